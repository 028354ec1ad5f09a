"""`cartooncodec encode` and `cartooncodec decode`: video <-> .ccv motion stream, offline.

encode: every frame -> models.MotionExtractor features -> MotionEncoder packets; the first
frame is the key frame. decode: packets -> MotionDecoder features -> models.Renderer frames
(MP4), or with --features-only the decoded features as a .npy array (frames x features).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codec.container import CcvFile, read_container, write_container
from codec.distortion import keypoint_error_px
from codec.errors import BitstreamError
from codec.keyframe import DEFAULT_QUALITY
from codec.motiondecoder import DecodedFrame, MotionDecoder
from codec.packet import OVERHEAD
from codec.ratecontrol import DEFAULT_TARGET_KBPS, parse_target_kbps
from models.checkpoint_option import add_checkpoint_arguments
from models.style_images import MAX_SENT_STYLE_IMAGES, SENT_STYLE_IMAGE_BYTES
from pipeline.receiver import FrameRenderer, Receiver
from pipeline.sender import Extractor, Sender

if TYPE_CHECKING:
    from codec.schema import FeatureSchema

log = logging.getLogger(__name__)

DEFAULT_PRESET = "lite-128"


def register(subparsers: argparse._SubParsersAction) -> None:
    encode = subparsers.add_parser(
        "encode",
        help="code a face video into a .ccv motion stream",
        description="Extract motion features from every frame of INPUT, code them into "
        "packets (first frame as key frame) and write a .ccv container.",
    )
    encode.add_argument("input", type=Path, help="video file (anything FFmpeg reads)")
    encode.add_argument("-o", "--output", type=Path, required=True, help="output .ccv file")
    style = encode.add_mutually_exclusive_group()
    style.add_argument("--prompt", help="style prompt stored with the stream, e.g. 'sketch'")
    style.add_argument(
        "--style-image",
        action="append",
        metavar="PATH",
        help=f"a style picture (file or folder; repeatable, at most {MAX_SENT_STYLE_IMAGES} "
        f"pictures) stored with the stream, re-encoded within {SENT_STYLE_IMAGE_BYTES // 1024} "
        "KiB each: decode adapts a style to its look",
    )
    encode.add_argument(
        "--target-kbps",
        type=parse_target_kbps,
        default=DEFAULT_TARGET_KBPS,
        help=f"motion rate to aim for, packet headers included (default {DEFAULT_TARGET_KBPS}); "
        "'off' codes every frame at the finest fixed step",
    )
    encode.add_argument("--stats-json", type=Path, help="write rate and error figures here")
    encode.add_argument("--preset", default=DEFAULT_PRESET, help="model preset (default lite-128)")
    add_checkpoint_arguments(encode)
    encode.add_argument("--intra-period", type=int, default=25, help="frames between intra frames")
    encode.add_argument(
        "--keyframe-quality", type=int, default=DEFAULT_QUALITY, help="key frame quality 0..100"
    )
    encode.add_argument("--max-frames", type=int, help="stop after this many frames")
    encode.set_defaults(func=run_encode)

    decode = subparsers.add_parser(
        "decode",
        help="render a .ccv motion stream to video",
        description="Decode a .ccv container and render it with the models (MP4), or write "
        "the decoded features (.npy) with --features-only.",
    )
    decode.add_argument("input", type=Path, help=".ccv file written by `cartooncodec encode`")
    decode.add_argument("-o", "--output", type=Path, required=True, help="output .mp4 (or .npy)")
    decode.add_argument("--stats-json", type=Path, help="write rate and loss figures here")
    decode.add_argument(
        "--features-only", action="store_true", help="write decoded features (.npy), no rendering"
    )
    decode.add_argument("--preset", help="model preset (default: the one the stream was made with)")
    add_checkpoint_arguments(decode)
    decode.add_argument("--device", help="torch device, e.g. cpu or cuda (default: best available)")
    decode.set_defaults(func=run_decode)


def run_encode(args: argparse.Namespace) -> int:
    from models import MotionExtractor
    from models.style_images import read_sent_style_images

    try:
        style_images = read_sent_style_images(args.style_image) if args.style_image else []
        extractor = MotionExtractor(preset=args.preset, checkpoint=args.checkpoint)
        stats = encode_video(
            args.input,
            args.output,
            extractor,
            prompt=args.prompt,
            style_images=style_images,
            target_kbps=args.target_kbps,
            intra_period=args.intra_period,
            keyframe_quality=args.keyframe_quality,
            max_frames=args.max_frames,
            preset=args.preset,
        )
    except (ValueError, OSError) as exc:
        log.error("encode failed: %s", exc)
        return 1
    return _report(stats, args.stats_json)


def run_decode(args: argparse.Namespace) -> int:
    try:
        ccv = read_container(args.input)
        if args.features_only or args.output.suffix == ".npy":
            stats = decode_features(ccv, args.output)
        else:
            from models import Renderer

            preset = args.preset or ccv.preset or DEFAULT_PRESET
            renderer = Renderer(preset=preset, checkpoint=args.checkpoint, device=args.device)
            stats = decode_video(ccv, args.output, renderer)
    except (BitstreamError, OSError) as exc:
        log.error("decode failed: %s", exc)
        return 1
    return _report(stats, args.stats_json)


def encode_video(
    input_path: Path,
    output_path: Path,
    extractor: Extractor,
    prompt: str | None = None,
    target_kbps: float | None = None,
    intra_period: int = 25,
    keyframe_quality: int = DEFAULT_QUALITY,
    max_frames: int | None = None,
    preset: str | None = None,
    style_images: Sequence[bytes] = (),
) -> dict[str, Any]:
    """Code a video file into a .ccv container; returns the stats dict. ``style_images``:
    pictures from ``models.style_images.encode_style_image``, stored for decode to adapt to."""
    from tqdm import tqdm

    fps, frames = read_video_frames(input_path, max_frames)
    sender = Sender(
        extractor,
        fps=fps,
        target_kbps=target_kbps,
        intra_period=intra_period,
        keyframe_quality=keyframe_quality,
        detect_every=1,  # a file has time for a detection on every frame
    )
    keyframe = b""
    packets: list[bytes] = []
    originals, decoded = [], []
    try:
        for index, frame in enumerate(tqdm(frames, desc="encode", unit="frame", total=max_frames)):
            sent = sender.send(frame, round(index * 1000 / fps))
            if index == 0:
                keyframe = sender.keyframe(sent.face)
            packets.append(sent.packet)
            originals.append(sent.features)
            decoded.append(np.asarray(sender.encoder.reconstruction))
    finally:
        sender.close()
    if not packets:
        raise ValueError(f"{input_path} has no video frames")
    if sender.tracker.faceless:
        log.warning(
            "%s: no face detected in %d of %d frames: coded the centre square there; the codec "
            "animates a face, so use a clip where one is visible",
            input_path,
            sender.tracker.faceless,
            len(packets),
        )
    schema, encoder = sender.schema, sender.encoder
    ccv = CcvFile(
        schema, fps, keyframe, packets, prompt=prompt, preset=preset, style_images=[*style_images]
    )
    write_container(output_path, ccv)
    stats = _rate_stats(ccv)
    stats["target_kbps"] = target_kbps
    stats["final_level"] = encoder.stats.level
    stats["keypoint_error_px_max"], stats["keypoint_error_px_mean"] = keypoint_error_px(
        np.stack(originals), np.stack(decoded), schema
    )
    return stats


def decode_packets(
    ccv: CcvFile, decoder: MotionDecoder
) -> tuple[list[DecodedFrame | None], dict[str, Any]]:
    """Every packet of the container through ``decoder``; None where dropped."""
    frames = [decoder.decode(packet) for packet in ccv.packets]
    stats = _rate_stats(ccv)
    stats["decoded"] = decoder.stats.decoded
    stats["dropped"] = dict(decoder.stats.dropped)
    return frames, stats


def decode_features(ccv: CcvFile, output_path: Path) -> dict[str, Any]:
    """Write the decoded features as an N x F float32 .npy (dropped frames repeat the last)."""
    frames, stats = decode_packets(ccv, MotionDecoder(ccv.schema))
    np.save(output_path, np.stack(_held_features(frames, ccv.schema)))
    return stats


def decode_video(ccv: CcvFile, output_path: Path, renderer: FrameRenderer) -> dict[str, Any]:
    """Render every decoded frame from the key frame and write an MP4 at the stream's fps."""
    from tqdm import tqdm

    receiver = Receiver(renderer.config, renderer)
    if receiver.schema != ccv.schema:
        raise BitstreamError(
            f"the stream's motion layout ({ccv.schema.size} numbers a frame, preset "
            f"{ccv.preset or 'not recorded'}) is not the renderer's ({receiver.schema.size}): "
            "decode with the preset the stream was encoded with (--preset)"
        )
    frames, stats = decode_packets(ccv, receiver.decoder)
    receiver.set_keyframe(ccv.keyframe)
    stats["style"] = _apply_style(renderer, ccv)
    features = _held_features(frames, ccv.schema)
    images = (receiver.render(f) for f in tqdm(features, desc="render", unit="frame"))
    write_mp4(output_path, images, ccv.fps)
    return stats


def _apply_style(renderer: FrameRenderer, ccv: CcvFile) -> str | None:
    """Activate the stream's style: adapted to its style pictures when it has some, else its
    prompt's. A style that cannot be had (an unknown prompt, a picture that does not decode)
    renders unstyled, with a warning, rather than failing."""
    if not ccv.style_images and not ccv.prompt:
        return None
    try:
        if ccv.style_images:
            from models.face_crop import FaceCropper
            from models.style_images import decode_sent_style_image, picture_style_name

            images = [
                decode_sent_style_image(data, f"style picture {index + 1} of the stream")
                for index, data in enumerate(ccv.style_images)
            ]
            name = picture_style_name(ccv.style_images)
            return renderer.set_style_images(images, name, FaceCropper()).result()
        return renderer.set_style(ccv.prompt).result()
    except ValueError as exc:
        log.warning("rendering without style: %s", exc)
        return None


def _held_features(frames: list[DecodedFrame | None], schema: FeatureSchema) -> list[np.ndarray]:
    """Per packet the decoded features; a dropped frame repeats the previous one (a freeze)."""
    held, last = [], None
    for frame in frames:
        last = frame.features if frame is not None else last
        if last is not None:
            held.append(last)
    if not held:
        raise BitstreamError("no frame of the stream could be decoded")
    return held


def read_video_frames(
    path: Path, max_frames: int | None = None
) -> tuple[float, Iterator[np.ndarray]]:
    """(fps, iterator of HxWx3 uint8 RGB frames); OSError/ValueError if unreadable."""
    import av

    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise ValueError(f"cannot open video {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path} has no video stream")
    stream = container.streams.video[0]
    fps = float(stream.average_rate or 25.0)

    def frames() -> Iterator[np.ndarray]:
        with container:
            for index, frame in enumerate(container.decode(stream)):
                if max_frames is not None and index >= max_frames:
                    return
                yield frame.to_ndarray(format="rgb24")

    return fps, frames()


def write_mp4(path: Path, images: Iterator[np.ndarray], fps: float) -> int:
    """H.264 MP4 of HxWx3 uint8 RGB images; returns the frame count."""
    from fractions import Fraction

    import av

    count = 0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.pix_fmt = "yuv420p"
        for image in images:
            if count == 0:
                stream.width, stream.height = image.shape[1], image.shape[0]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            container.mux(stream.encode(frame))
            count += 1
        container.mux(stream.encode(None))
    return count


def _rate_stats(ccv: CcvFile) -> dict[str, Any]:
    frames = len(ccv.packets)
    header_bytes = OVERHEAD * frames
    payload_bytes = sum(len(p) for p in ccv.packets) - header_bytes
    seconds = frames / ccv.fps if frames else 0.0
    kbps = lambda n: 8 * n / seconds / 1000 if seconds else 0.0  # noqa: E731
    return {
        "frames": frames,
        "fps": ccv.fps,
        "payload_bytes": payload_bytes,
        "header_bytes": header_bytes,
        "keyframe_bytes": len(ccv.keyframe),
        "payload_kbps": kbps(payload_bytes),
        "header_kbps": kbps(header_bytes),
        "total_kbps": kbps(payload_bytes + header_bytes),
        "mean_bytes_per_packet": (payload_bytes + header_bytes) / frames if frames else 0.0,
    }


def _report(stats: dict[str, Any], stats_json: Path | None) -> int:
    text = json.dumps(stats, indent=2)
    if stats_json is not None:
        stats_json.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0
