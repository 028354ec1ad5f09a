"""When the concealment timer fires: 1.5 intervals after a decoded frame, then each interval."""

from __future__ import annotations

import asyncio

import numpy as np

from codec import DecodedFrame, MotionEncoder
from codec.concealment import MAX_CONCEALED_FRAMES
from models import get_preset
from pipeline.concealtimer import ConcealmentTimer
from pipeline.receiver import Receiver


def receiver_with_two_frames(interval_ms: int) -> Receiver:
    receiver = Receiver(get_preset("tiny"))
    encoder = MotionEncoder(receiver.schema, target_kbps=None)
    features = np.zeros(receiver.schema.size, np.float32)
    for index in range(2):
        assert receiver.decode(encoder.encode(features, index * interval_ms)) is not None
    return receiver


async def test_concealed_frames_follow_an_overdue_one_until_the_run_ends() -> None:
    receiver = receiver_with_two_frames(interval_ms=20)
    loop = asyncio.get_running_loop()
    submitted: list[tuple[float, DecodedFrame]] = []
    timer = ConcealmentTimer(receiver, lambda frame: submitted.append((loop.time(), frame)))
    started = loop.time()
    timer.decoded()
    await asyncio.sleep(0.03 + 0.02 * MAX_CONCEALED_FRAMES + 0.1)
    assert [f.seq for _, f in submitted] == list(range(2, 2 + MAX_CONCEALED_FRAMES))
    assert all(f.concealed for _, f in submitted)
    assert submitted[0][0] - started >= 0.029  # 1.5 intervals of 20 ms, not one
    assert timer.frames_concealed == MAX_CONCEALED_FRAMES
    timer.close()


async def test_a_frame_that_decodes_in_time_is_not_concealed_and_close_stops_it() -> None:
    receiver = receiver_with_two_frames(interval_ms=100)
    submitted: list[DecodedFrame] = []
    timer = ConcealmentTimer(receiver, submitted.append)
    for _ in range(10):  # a frame every ~20 ms re-arms the timer long before its 150 ms
        timer.decoded()
        await asyncio.sleep(0.02)
    timer.close()
    await asyncio.sleep(0.2)
    assert submitted == [] and timer.frames_concealed == 0
    timer.decoded()  # after close nothing is armed
    await asyncio.sleep(0.2)
    assert submitted == []
