"""One participant of a call: its face to the server as motion, the other's cartoon back.

    client = CallClient(CallConfig(server="http://127.0.0.1:8080", room=..., token=...))
    result = await client.run()   # CallResult: frames, rates, latencies, prompt swaps

A CallClient strings three parts together and holds the call's negotiation: the
``CallConnection`` (peer connection, data channels, the server's call clock), the ``Uplink``
(capture -> ``pipeline.Sender`` -> key frame, motion, prompts, style pictures) and the
``Viewer`` (the rendered video and its per-frame metadata -> latency, recording, window).

On joining, the client sends ``hello`` (preset, motion schema fingerprint, capabilities) and
compares the server's; a mismatch, or an ``error`` the server marks fatal, ends the call with a
CallError that says what to change. ``style`` messages say which style each prompt became.
Style pictures (``config.style_images`` at the start, :meth:`Uplink.send_style_images` or a
line ``@PATH`` on stdin mid-call) are sent like a new prompt: the server adapts a style to
their look in the background and answers ``style`` once frames render in it.

End-to-end latency of a shown frame is (arrival time) - (capture time at the sender), both on
the server's call clock: the client estimates its offset to that clock from ping/pong round
trips on the ``stats`` channel and stamps captures with it, so the figure holds across machines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from client.config import CallConfig
from client.connection import CallConnection, CallError, MessageHandler, WireTotals
from client.localviewer import LocalViewer
from client.uplink import PromptSent, Uplink
from client.viewer import ShownFrame, Viewer
from pipeline import protocol
from pipeline.meters import percentiles

__all__ = ["CallClient", "CallConfig", "CallError", "CallResult"]

logger = logging.getLogger(__name__)

REPORT_INTERVAL_S = 2.0
PING_EVERY = 5  # reports: a clock ping every 10 s after the 5 at the start


@dataclass
class CallResult:
    name: str
    duration_s: float
    sending_s: float  # first to last motion packet
    frames_sent: int
    frames_received: int
    shown: list[ShownFrame]
    prompts: list[PromptSent]
    style_errors: list[str]
    motion_bytes: int
    control_bytes: int  # JSON messages; the key frame's chunks are counted apart
    keyframe_bytes: int
    wire: WireTotals  # both ways, framing included
    style_image_bytes: int = 0  # style pictures' chunks
    motion_messages: int = 0  # frames are bundled: messages on the motion channel
    av_offsets_ms: list[float] = field(default_factory=list)  # client.audio.AudioPlayout

    def summary(self) -> dict[str, Any]:
        seconds = max(self.duration_s, 1e-6)
        p50, p95, p99 = percentiles([f.latency_ms for f in self.shown])
        showing_s = self.shown[-1].arrival_ms - self.shown[0].arrival_ms if self.shown else 0.0
        return {
            "frames_sent": self.frames_sent,
            "frames_shown": len(self.shown),
            "frames_concealed": sum(f.concealed for f in self.shown),
            "fps_sent": _rate(self.frames_sent, self.sending_s),
            "fps_shown": _rate(len(self.shown), showing_s / 1000),
            "uplink_motion_kbps": self.motion_bytes * 8 / 1000 / seconds,
            "uplink_control_kbps": self.control_bytes * 8 / 1000 / seconds,
            "keyframe_bytes": self.keyframe_bytes,
            "style_image_bytes": self.style_image_bytes,
            "uplink_total_kbps": self.wire.bytes_sent * 8 / 1000 / seconds,
            "uplink_packets_per_s": self.wire.packets_sent / seconds,
            "uplink_motion_messages_per_s": self.motion_messages / seconds,
            "downlink_kbps": self.wire.bytes_received * 8 / 1000 / seconds,
            "downlink_packets_per_s": self.wire.packets_received / seconds,
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
            "latency_p99_ms": p99,
            # ms, positive: the sound came late; p95 of the offset's size
            "av_offset_p50_ms": percentiles(self.av_offsets_ms, (50,))[0],
            "av_offset_p95_abs_ms": percentiles([abs(o) for o in self.av_offsets_ms], (95,))[0],
            "av_offsets": len(self.av_offsets_ms),
        }


def _rate(events: int, seconds: float) -> float:
    """Events per second over the span from the first to the last event."""
    return (events - 1) / seconds if events > 1 and seconds > 0 else 0.0


class CallClient:
    def __init__(self, config: CallConfig) -> None:
        self.config = config
        self.connection = CallConnection(config.server, config.ice_servers)
        self.uplink = Uplink(config, self.connection)
        self.viewer = Viewer(config, self.connection.clock)
        self.local = (
            LocalViewer(config, self.connection, self.viewer, self.uplink.acknowledge)
            if config.render_locally
            else None
        )
        self.style_errors: list[str] = []
        self.styles: dict[int, str] = {}  # prompt id -> the style the server made active
        self.server_hello: dict[str, Any] | None = None
        self.failure: CallError | None = None  # why the call ended early, raised by call()
        self.peer_left = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._started = 0.0
        self._stopped = 0.0
        self._wire = WireTotals()

    # -- set-up --------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Join the room, open the channels, sync the clock, send hello."""
        handlers: dict[str, MessageHandler] = {
            protocol.MOTION: self._on_motion,
            protocol.CONTROL: self._on_control,
            protocol.STATS: self._on_stats,
        }
        if self.local is not None:
            self.local.start()  # the renderer loads while the call is set up
        config = self.config  # the room and token may be filled in after construction
        audio = self.uplink.audio
        await self.connection.open(
            config.room, config.token, handlers, self._on_track, config.render_locally, audio
        )
        if audio is not None:
            audio.connected.set()  # both ends' channels are open: the sound may start
        self.uplink.send_control(self._hello())

    def _hello(self) -> str:
        return protocol.encode_hello(self.config.preset, self.uplink.schema_fingerprint)

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> CallResult:
        """Join, call for ``config.seconds`` (or until the other side leaves), hang up."""
        try:
            await self.connect()
            await self.call()
        finally:
            await self.close()
        return self.result()

    async def call(self) -> None:
        self._started = time.monotonic()
        await self.uplink.send_keyframe()
        self.uplink.send_prompt(self.config.prompt)
        if self.config.style_images:
            self.uplink.send_style_images(self.config.style_images)
        sending = asyncio.create_task(self.uplink.send_motion())
        peer_left = asyncio.create_task(self.peer_left.wait())
        stopped = asyncio.create_task(self._stop.wait())
        self._tasks += [
            sending,
            peer_left,
            stopped,
            asyncio.create_task(self._report_loop()),
            asyncio.create_task(self._prompt_schedule()),
        ]
        if self.config.read_stdin:
            self._read_stdin_prompts()
        if self.uplink.audio is not None:
            announce = self.uplink.audio.announce(self.connection.stats_sender)
            self._tasks.append(asyncio.create_task(announce))
        ends = [sending, peer_left, stopped]
        await asyncio.wait(ends, timeout=self.config.seconds, return_when=asyncio.FIRST_COMPLETED)
        self._stopped = time.monotonic()
        if self.failure is not None:
            raise self.failure
        failure = sending.exception() if sending.done() and not sending.cancelled() else None
        if failure is not None:
            raise CallError(f"sending motion failed: {failure}") from failure

    def stop(self) -> None:
        """End :meth:`call` now (the caller then closes)."""
        self._stop.set()

    def fail(self, reason: str) -> None:
        """End :meth:`call` now; it raises CallError(reason) (the first reason, if several)."""
        if self.failure is None:
            self.failure = CallError(reason)
        self._stop.set()

    async def _report_loop(self) -> None:
        """What this viewer sees, to the server's stats, every REPORT_INTERVAL_S; a clock ping
        every PING_EVERY reports keeps the offset fresh (each message costs a packet and a
        SACK on the wire)."""
        reports = 0
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            reports += 1
            if reports % PING_EVERY == 0:
                self.connection.ping()
            self.connection.send(protocol.STATS, self.viewer.report())

    async def _prompt_schedule(self) -> None:
        for at_s, text in sorted(self.config.prompt_schedule):
            await asyncio.sleep(max(0.0, self._started + at_s - time.monotonic()))
            self.uplink.send_prompt(text)

    def _read_stdin_prompts(self) -> None:
        """Each line typed (or piped) on stdin becomes the new prompt; ``@PATH`` sends the
        style picture(s) at PATH (a file or folder) instead."""
        loop = asyncio.get_running_loop()
        fd = sys.stdin.fileno()
        if not (os.isatty(fd) or stat.S_ISFIFO(os.fstat(fd).st_mode)):
            return

        def on_line() -> None:
            line = sys.stdin.readline()
            if not line:
                loop.remove_reader(fd)
            elif line.strip().startswith("@"):
                path = line.strip()[1:].strip()
                self._tasks.append(asyncio.create_task(self.uplink.send_style_images_from([path])))
            elif line.strip():
                self.uplink.send_prompt(line.strip())

        loop.add_reader(fd, on_line)

    # -- incoming ------------------------------------------------------------------------------

    def _on_motion(self, data: str | bytes) -> None:
        """Acknowledgements of this client's motion and (rendering locally) the other's relayed
        motion packets, alone or bundled; anything else is refused by the uplink and counted
        there."""
        try:
            items = protocol.unbundle(data)
        except protocol.ProtocolError as exc:
            self.uplink.acks_refused += 1
            logger.debug("%s: ignoring motion message: %s", self.config.name, exc)
            return
        for item in items:
            if self.local is not None and item[:1] != bytes([protocol.ACK_MARKER]):
                self.local.on_packet(item)
            else:
                self.uplink.on_ack(item)

    def _on_control(self, data: str | bytes) -> None:
        if isinstance(data, bytes) and self.local is not None:
            self.local.on_chunk(data)  # the other's key frame or style pictures, relayed
            return
        try:
            message = protocol.parse_message(data)
        except protocol.ProtocolError as exc:
            logger.warning("%s: ignoring control message: %s", self.config.name, exc)
            return
        kind = message["type"]
        if kind == "intra":
            self.uplink.request_intra()
        elif kind == "hello":
            self._on_hello(message)
        elif kind == "style":
            self._on_style(message["id"], message["name"])
        elif kind == "error":
            self._on_error(message["message"], message.get("fatal") is True)
        elif kind == "bye":
            self.peer_left.set()
        elif kind in ("prompt", "style_image") and self.local is not None:
            self._on_relayed_style(self.local, message)
        else:
            logger.warning("%s: ignoring unexpected %r message", self.config.name, kind)

    @staticmethod
    def _on_relayed_style(local: LocalViewer, message: dict[str, Any]) -> None:
        """The other's prompt, or their style pictures' announcement, to render them here."""
        if message["type"] == "prompt":
            local.on_prompt(message["id"], message["text"])
        else:
            local.on_style_image(message["id"], message["transfers"])

    def _on_hello(self, hello: dict[str, Any]) -> None:
        mismatch = protocol.hello_mismatch(hello, protocol.parse_message(self._hello()))
        if mismatch is not None:
            self.fail(f"the server cannot take this call: {mismatch[1]}")
            return
        self.server_hello = hello
        logger.info("%s: server agrees (preset %s)", self.config.name, hello["preset"])

    def _on_style(self, prompt_id: int, style: str) -> None:
        """The server renders prompt ``prompt_id`` as ``style``: the built-in style the prompt
        named or described, else the normalised prompt itself."""
        self.styles[prompt_id] = style
        prompt = next((p.text for p in self.uplink.prompts if p.id == prompt_id), "")
        logger.info(
            "%s: prompt %d %r is active as style %r", self.config.name, prompt_id, prompt, style
        )

    def _on_error(self, text: str, fatal: bool) -> None:
        """The server refused something; ``fatal``: the call cannot go on (said once, by
        call()'s CallError, rather than logged too)."""
        if fatal:
            self.fail(f"the server ended the call: {text}")
            return
        logger.warning("%s: server says: %s", self.config.name, text)
        self.style_errors.append(text)

    def _on_stats(self, data: str | bytes) -> None:
        try:
            message = protocol.parse_message(data)
        except protocol.ProtocolError as exc:
            logger.warning("%s: ignoring stats message: %s", self.config.name, exc)
            return
        if message["type"] == "pong":
            self.connection.on_pong(message)
        elif message["type"] == "frames":
            for meta in protocol.frame_metas(message):
                self.viewer.on_frame_meta(meta)
        elif message["type"] == "audio":
            self.viewer.audio.playout.anchor(message["pts"], message["capture_ms"])

    def _on_track(self, track: Any) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.create_task(self.viewer.receive(track)))
        elif track.kind == "audio":
            self._tasks.append(asyncio.create_task(self.viewer.audio.run(track)))

    # -- teardown ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Say bye, stop every task, close the peer connection and the outputs."""
        if self.connection.send(protocol.CONTROL, protocol.encode_message("bye")):
            await asyncio.sleep(0.05)  # let the bye leave before the transport closes
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._wire = self.connection.transport_totals()
        await self.connection.close()
        await self.uplink.close()
        if self.local is not None:
            await self.local.close()
        await self.viewer.close()

    def result(self) -> CallResult:
        uplink = self.uplink
        return CallResult(
            name=self.config.name,
            duration_s=max(0.0, self._stopped - self._started),
            sending_s=uplink.sending_s(),
            frames_sent=uplink.frames_sent,
            frames_received=self.viewer.frames_received,
            shown=self.viewer.shown,
            prompts=uplink.prompts,
            style_errors=self.style_errors,
            motion_bytes=uplink.motion_bytes,
            control_bytes=uplink.control_bytes,
            keyframe_bytes=uplink.keyframe_bytes,
            style_image_bytes=uplink.style_image_bytes,
            wire=self._wire,
            av_offsets_ms=self.viewer.audio.playout.offsets_ms,
            motion_messages=uplink.messages_sent,
        )
