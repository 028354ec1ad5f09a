"""This codec end to end on a clip: rate accounting and rendered frames (tiny preset)."""

from __future__ import annotations

import pytest

from bench.ourcodec import OfflineCodec
from tests.bench_clip import moving_shapes


@pytest.fixture(scope="module")
def codec() -> OfflineCodec:
    offline = OfflineCodec(preset="tiny")
    yield offline
    offline.close()


def test_coded_clip_counts_key_frame_payload_and_headers(codec: OfflineCodec) -> None:
    frames = moving_shapes(frames=6, size=64)
    features = codec.features(frames)
    assert features.shape == (6, 60)
    fine = codec.code(frames, features, level=0, keyframe_quality=50)
    coarse = codec.code(frames, features, level=16, keyframe_quality=10)
    assert fine.rendered.shape == frames.shape  # rendered at 32 px, compared at the clip's 64
    assert fine.media_bytes == fine.keyframe_bytes + fine.payload_bytes
    assert fine.header_bytes == 6 * (fine.header_bytes // 6) > 0
    assert coarse.payload_bytes <= fine.payload_bytes
    assert coarse.keyframe_bytes < fine.keyframe_bytes
