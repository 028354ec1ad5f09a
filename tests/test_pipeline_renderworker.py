from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codec import DecodedFrame
from models import MotionExtractor, Renderer, get_preset
from pipeline.receiver import Receiver
from pipeline.renderworker import NO_STYLE_ID, FrameMeta, RenderWorker
from tests.tinycall import write_styled_checkpoint

pytestmark = pytest.mark.timeout(60)


def tiny_receiver() -> Receiver:
    return Receiver(get_preset("tiny"))


def meta(seq: int) -> FrameMeta:
    return FrameMeta(seq=seq, capture_ms=seq * 40, prompt_id=0, render_ms=1.0)


def image(value: int) -> np.ndarray:
    return np.full((16, 16, 3), value, np.uint8)


def decoded(seq: int, features: np.ndarray) -> DecodedFrame:
    return DecodedFrame(seq, seq * 40, 0, seq == 0, features)


async def test_worker_renders_only_the_newest_frame_in_the_active_style(tmp_path: Path) -> None:
    checkpoint = write_styled_checkpoint(tmp_path / "tiny.pt")
    face = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    features = MotionExtractor("tiny", checkpoint).extract(face)
    worker = RenderWorker(tiny_receiver(), lambda: Renderer("tiny", checkpoint), name="test")
    rendered: list[tuple[np.ndarray, FrameMeta]] = []
    worker.sink = lambda img, m: rendered.append((img, m))
    worker.start()

    worker.submit(decoded(0, features))  # looked at once the renderer is built
    await asyncio.wait_for(_until(lambda: worker.frames_without_reference == 1), 10)
    assert not rendered

    await worker.set_reference(face)
    for seq in range(1, 6):  # faster than the worker can look: only the newest survives
        worker.submit(decoded(seq, features))
    await asyncio.wait_for(_until(lambda: len(rendered) == 1), 10)
    assert rendered[0][1].seq == 5 and rendered[0][1].prompt_id == NO_STYLE_ID
    assert worker.frames_stale == 4

    active: list[tuple[int, str]] = []
    worker.on_style_active = lambda prompt_id, style: active.append((prompt_id, style))
    worker.set_prompt(7, "Comic ")  # the built-in style it maps to is named
    await asyncio.wait_for(_until(lambda: active == [(7, "comic")]), 10)
    worker.submit(decoded(6, features))
    await asyncio.wait_for(_until(lambda: len(rendered) == 2), 10)
    styled, unstyled = rendered[1][0].astype(float), rendered[0][0].astype(float)
    assert rendered[1][1].prompt_id == 7 and styled.mean() > unstyled.mean() + 40

    await worker.close()
    assert worker.stats()["frames_rendered"] == 2


async def _until(condition) -> None:  # type: ignore[no-untyped-def]
    while not condition():
        await asyncio.sleep(0.01)


async def test_the_renderer_is_built_on_start_and_calls_wait_for_it(tmp_path: Path) -> None:
    checkpoint = write_styled_checkpoint(tmp_path / "tiny.pt")
    face = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    release, built = threading.Event(), []

    def slow_build() -> Renderer:
        release.wait(10)
        built.append(Renderer("tiny", checkpoint))
        return built[-1]

    worker = RenderWorker(tiny_receiver(), slow_build, name="test")
    assert worker.stats()["renderer"] == "not built"
    with pytest.raises(RuntimeError, match="the render worker has not been started"):
        await worker.set_reference(face)
    worker.start()
    worker.start()  # a second start (connection up, then a channel) builds nothing more
    assert worker.stats()["renderer"] == "building"
    reference = asyncio.create_task(worker.set_reference(face))  # arrives during the build
    await asyncio.sleep(0.1)
    assert not reference.done() and built == []
    release.set()
    await asyncio.wait_for(reference, 10)
    assert worker.has_reference and len(built) == 1 and worker.stats()["renderer"] == "ready"
    await worker.close()


async def test_a_failed_build_is_reported_and_nothing_renders() -> None:
    def broken() -> Any:
        raise RuntimeError("CUDA out of memory")

    failed: list[bool] = []
    worker = RenderWorker(tiny_receiver(), broken, name="test")
    worker.on_build_failed = lambda: failed.append(True)
    worker.start()
    await asyncio.wait_for(_until(lambda: failed == [True]), 10)
    assert worker.stats()["renderer"] == "failed"
    with pytest.raises(RuntimeError, match="building it failed"):
        await worker.set_reference(image(0))
    styles: list[str] = []
    worker.on_style_failed = lambda prompt_id, reason: styles.append(reason)
    worker.set_prompt(1, "comic")
    await asyncio.wait_for(_until(lambda: len(styles) == 1), 10)
    assert "building it failed" in styles[0]
    await worker.close()  # nothing to close: no renderer was built


async def test_a_prompt_that_arrives_while_the_worker_closes_is_ignored(tmp_path: Path) -> None:
    """The end of a call: without this the prompt failed with "cannot schedule new futures
    after shutdown" and the server sent that to the participant as a refusal."""
    checkpoint = write_styled_checkpoint(tmp_path / "tiny.pt")
    worker = RenderWorker(tiny_receiver(), lambda: Renderer("tiny", checkpoint), name="test")
    outcomes: list[tuple[int, str]] = []
    worker.on_style_failed = lambda prompt_id, reason: outcomes.append((prompt_id, reason))
    worker.on_style_active = lambda prompt_id, style: outcomes.append((prompt_id, style))
    worker.start()
    await worker.set_reference(image(0))
    await worker.close()
    worker.set_prompt(2, "comic")
    worker.set_style_images(3, [image(100)], "mine")
    await asyncio.sleep(0.2)
    assert outcomes == [] and worker.active_prompt_id == NO_STYLE_ID


async def test_closing_an_unstarted_worker_builds_nothing() -> None:
    def never() -> Any:
        raise AssertionError("built")

    await RenderWorker(tiny_receiver(), never, name="test").close()


async def test_style_pictures_that_cannot_be_used_fail_with_the_reason(tmp_path: Path) -> None:
    checkpoint = write_styled_checkpoint(tmp_path / "tiny.pt")
    worker = RenderWorker(tiny_receiver(), lambda: Renderer("tiny", checkpoint), name="test")
    failed: list[tuple[int, str]] = []
    worker.on_style_failed = lambda prompt_id, reason: failed.append((prompt_id, reason))
    worker.start()
    worker.set_style_images(2, [image(100)], "Comic")
    await asyncio.wait_for(_until(lambda: failed), 10)
    assert failed == [
        (2, "style name 'Comic' selects the built-in style 'comic'; choose another name")
    ]
    worker.set_style_images(3, [], "mine")
    await asyncio.wait_for(_until(lambda: len(failed) == 2), 10)
    assert failed[1] == (3, "no style pictures given")
    await worker.close()


async def test_a_renderer_of_another_motion_layout_is_refused_at_build(tmp_path: Path) -> None:
    checkpoint = write_styled_checkpoint(tmp_path / "tiny.pt")
    receiver = Receiver(get_preset("tiny", num_kp=5))
    failed: list[bool] = []
    worker = RenderWorker(receiver, lambda: Renderer("tiny", checkpoint), name="test")
    worker.on_build_failed = lambda: failed.append(True)
    worker.start()
    await asyncio.wait_for(_until(lambda: failed == [True]), 10)
    with pytest.raises(RuntimeError, match="attach\\(\\) one first"):
        receiver.render(np.zeros(receiver.schema.size, np.float32))
    await worker.close()
