"""When to conceal: a frame this many of the sender's frame intervals overdue is concealed.

The ``Receiver`` knows *what* to show for a frame that did not arrive (``codec.concealment``);
a ``ConcealmentTimer`` on the event loop decides *when*: each decoded frame re-arms it for
``CONCEAL_AFTER_INTERVALS`` frame intervals, and when it fires the concealed frame goes to
``submit`` like a decoded one, and it re-arms for one interval until a frame decodes again or
the Receiver has nothing more to conceal. The server's participant and a client that renders
locally use it alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from codec.motiondecoder import DecodedFrame
from pipeline.receiver import Receiver

CONCEAL_AFTER_INTERVALS = 1.5


class ConcealmentTimer:
    def __init__(self, receiver: Receiver, submit: Callable[[DecodedFrame], None]) -> None:
        self._receiver = receiver
        self._submit = submit
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.frames_concealed = 0

    def decoded(self) -> None:
        """A frame decoded: conceal the next one unless it decodes in time."""
        self._arm(CONCEAL_AFTER_INTERVALS)

    def _arm(self, intervals: float) -> None:
        self._cancel()
        delay_s = intervals * self._receiver.concealer.interval_ms / 1000
        if delay_s > 0 and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(delay_s, self._fire)

    def _fire(self) -> None:
        self._timer = None
        frame = self._receiver.conceal()
        if frame is None:  # the longest run concealed: the face holds still
            return
        self.frames_concealed += 1
        self._submit(frame)
        self._arm(1.0)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self._closed = True
        self._cancel()
