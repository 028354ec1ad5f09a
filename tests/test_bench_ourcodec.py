"""This codec end to end on a clip, and its baselines: rate accounting and scores (tiny preset)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.conventional import kbps
from bench.metrics import video_metrics
from bench.ourcodec import (
    STATIC,
    X265_LOWEST,
    ZERO_MOTION,
    OfflineCodec,
    Setting,
    measure_clip,
)
from codec.keyframe import encode_keyframe, split_chunks
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
    fine = codec.code(frames, features, Setting(level=0, keyframe_quality=50))
    coarse = codec.code(frames, features, Setting(level=16, keyframe_quality=10))
    assert fine.rendered.shape == frames.shape  # rendered at 32 px, compared at the clip's 64
    sent = sum(len(c) for c in split_chunks(encode_keyframe(frames[0], quality=50)))
    assert fine.keyframe_bytes == sent  # the key frame as sent: chunk headers included
    assert fine.sent_bytes == fine.keyframe_bytes + fine.payload_bytes + fine.header_bytes
    assert fine.header_bytes == 6 * (fine.header_bytes // 6) > 0
    assert fine.kbps(fine.sent_bytes) == pytest.approx(kbps(fine.sent_bytes, 6))
    assert coarse.payload_bytes <= fine.payload_bytes
    assert coarse.keyframe_bytes < fine.keyframe_bytes
    assert (
        np.abs(fine.keyframe.astype(int) - frames[0]).mean()
        < np.abs(coarse.keyframe.astype(int) - frames[0]).mean()
    )  # the receiver's reference is the decoded key frame


def test_measure_clip_scores_ours_and_the_baselines(codec: OfflineCodec) -> None:
    frames = moving_shapes(frames=6, size=64)
    settings = [Setting(level=0, keyframe_quality=q) for q in (10, 60)] + [
        Setting(level=16, keyframe_quality=60)
    ]
    measured = measure_clip(codec, "shapes", frames, settings, fps=30.0)
    names = [(p.codec, p.setting) for p in measured.points]
    assert names == [
        ("ours-kq10", "level=0"),
        ("ours-kq60", "level=0"),
        ("ours-kq60", "level=16"),
        (STATIC, "kq10"),
        (STATIC, "kq60"),
        (ZERO_MOTION, "uncoded reference"),
        (X265_LOWEST, "qp=51"),
    ]
    coded = measured.coded[1]
    ours = measured.point("ours-kq60")
    assert ours.kbps == pytest.approx(kbps(coded.sent_bytes, 6, fps=30.0))
    assert ours.ssim == pytest.approx(video_metrics(frames, coded.rendered)["ssim"])
    static = [p for p in measured.points if p.codec == STATIC][1]
    assert static.kbps == pytest.approx(kbps(coded.keyframe_bytes, 6, fps=30.0))
    repeated = np.broadcast_to(coded.keyframe, frames.shape)
    assert static.psnr == pytest.approx(video_metrics(frames, repeated)["psnr"])
    assert measured.point(ZERO_MOTION).kbps is None
    x265 = measured.point(X265_LOWEST)
    assert x265.kbps is not None and x265.kbps > 0 and 0 < x265.ms_ssim < 1


def test_zero_motion_renders_each_frame_from_itself(codec: OfflineCodec) -> None:
    """With a frame as its own reference the output does not depend on the other frames."""
    frames = moving_shapes(frames=4, size=64)
    features = codec.features(frames)
    whole = codec.zero_motion(frames, features)
    alone = codec.zero_motion(frames[2:3], features[2:3])
    np.testing.assert_array_equal(whole[2], alone[0])
    assert not np.array_equal(whole[0], whole[3])
