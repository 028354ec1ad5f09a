"""How late an event loop runs a periodic task (the measure of work that blocks the loop), and
a frame source slow enough to block it."""

from __future__ import annotations

import asyncio
import time

import numpy as np

TICK_S = 0.01


class LoopLag:
    """Wakes every TICK_S on the running loop and keeps the largest lateness, in seconds.

    async with LoopLag() as lag:
        ...  # the work under test
    assert lag.max_s < 0.05
    """

    def __init__(self) -> None:
        self.max_s = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            self.max_s = max(self.max_s, loop.time() - due)
            self.ticks += 1

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._probe())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class SlowSource:
    """Frames numbered 0, 1, 2, ... (every pixel = the number mod 256), ``size`` square; each
    read() takes ``delay_s``; EOFError after ``fail_after`` frames."""

    def __init__(self, delay_s: float, fail_after: int | None = None, size: int = 4) -> None:
        self.delay_s = delay_s
        self.fail_after = fail_after
        self.size = size
        self.reads = 0
        self.closed = False

    def read(self) -> np.ndarray:
        if self.fail_after is not None and self.reads >= self.fail_after:
            raise EOFError("no more frames")
        time.sleep(self.delay_s)
        self.reads += 1
        return np.full((self.size, self.size, 3), (self.reads - 1) % 256, np.uint8)

    def close(self) -> None:
        self.closed = True
