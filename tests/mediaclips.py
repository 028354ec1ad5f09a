"""Tiny video files with sound, made on the fly for the tests (PyAV)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from av import AudioFrame


def write_clip_with_sound(
    path: Path, tone_s: tuple[float, float] | None, rate: int = 44_100, garbage: bool = False
) -> None:
    """2 s at 10 fps whose grey level is 10 × the picture's index, with a stereo AAC track (at
    ``rate``): a 1 kHz tone over ``tone_s``, else silence; ``garbage``: its packets scrambled;
    ``tone_s`` None: no sound track."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        sound = None if tone_s is None else container.add_stream("aac", rate=rate)
        if sound is not None:
            sound.layout = "stereo"
        for i in range(20):
            image = np.full((32, 32, 3), 10 * i, np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, "rgb24")))
        container.mux(video.encode(None))
        if sound is None or tone_s is None:
            return
        t = np.arange(2 * rate) / rate
        on = (t >= tone_s[0]) & (t < tone_s[1])
        wave = np.where(on, 0.5 * np.sin(2 * np.pi * 1000 * t), 0).astype(np.float32)
        packets = []
        for k in range(0, len(t), 1024):
            frame = AudioFrame.from_ndarray(
                np.tile(wave[k : k + 1024], (2, 1)), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = rate, k
            packets += sound.encode(frame)
        packets += sound.encode(None)
        rng = np.random.default_rng(0)
        for packet in packets:
            if garbage:
                scrambled = av.Packet(rng.integers(0, 256, packet.size, np.uint8).tobytes())
                scrambled.pts, scrambled.dts = packet.pts, packet.dts
                scrambled.time_base, scrambled.stream = packet.time_base, sound
                packet = scrambled
            container.mux(packet)
