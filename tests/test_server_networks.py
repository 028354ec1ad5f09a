"""SharedNetworks: one load per server, one renderer (state only) per participant."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from models.renderer import Renderer
from server.networks import SharedNetworks
from server.settings import ServerSettings
from tests.models_helpers import face_like_frame, single_thread  # noqa: F401
from tests.tinycall import write_styled_checkpoint

pytestmark = pytest.mark.usefixtures("single_thread")


def test_participants_share_one_load_of_the_networks(tmp_path: Path) -> None:
    checkpoint = write_styled_checkpoint(tmp_path / "tiny.pt")
    networks = SharedNetworks(ServerSettings(preset="tiny", checkpoint=str(checkpoint)))
    assert not networks.loaded
    with ThreadPoolExecutor(4) as pool:  # four joins building at once
        renderers = list(pool.map(lambda _: networks.renderer(), range(4)))
    try:
        assert networks.loaded
        assert len({id(r.wrapper) for r in renderers}) == 1
        assert len({id(r.styles) for r in renderers}) == 1
        assert len({id(r) for r in renderers}) == 4
        first, second = renderers[:2]
        first.set_reference(face_like_frame(32))
        second.set_reference(face_like_frame(32, shift=5))
        assert second.set_style("comic").result(timeout=10) == "comic"
        motion = first.extractor.extract(face_like_frame(32, 2))
        assert first.style_key == "none"  # the other participant's prompt is not this one's
        assert not np.array_equal(first.render(motion), second.render(motion))
    finally:
        for renderer in renderers:
            renderer.close()


def test_a_failed_load_is_reported_and_tried_again(tmp_path: Path) -> None:
    broken = tmp_path / "tiny.pt"
    broken.write_bytes(b"not torch")
    networks = SharedNetworks(ServerSettings(preset="tiny", checkpoint=str(broken)))
    with pytest.raises(ValueError, match="checkpoint"):
        networks.renderer()
    assert not networks.loaded
    write_styled_checkpoint(broken)
    renderer = networks.renderer()
    renderer.close()
    assert isinstance(renderer, Renderer) and networks.loaded
