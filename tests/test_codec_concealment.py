import numpy as np
import pytest

from codec import DecodedFrame
from codec.concealment import Concealer
from codec.schema import motion_schema


def _frame(seq: int, value: float) -> DecodedFrame:
    features = np.full(60, value, dtype=np.float32)
    return DecodedFrame(seq, 1000 + 40 * seq, 2, False, features)


def test_nothing_to_conceal_before_two_decoded_frames():
    concealer = Concealer()
    assert concealer.conceal() is None
    concealer.decoded(_frame(0, 0.0))
    assert concealer.conceal() is None and concealer.interval_ms == 0


def test_motion_continues_at_the_last_velocity_then_slows_and_stops():
    concealer = Concealer(max_frames=3)
    concealer.decoded(_frame(0, 0.0))
    concealer.decoded(_frame(2, 0.25))  # 0.125 a frame, one frame lost between
    assert concealer.interval_ms == 40
    made = [concealer.conceal() for _ in range(3)]
    assert concealer.conceal() is None  # three in a row at most: then the face holds still
    frames = [f for f in made if f is not None]
    assert len(frames) == 3
    assert [(f.seq, f.capture_time_ms, f.prompt_id, f.concealed) for f in frames] == [
        (3, 1120, 2, True),
        (4, 1160, 2, True),
        (5, 1200, 2, True),
    ]
    assert [float(f.features[0]) for f in frames] == [0.375, 0.4375, 0.46875]
    assert all(f.features.dtype == np.float32 for f in frames)


def test_a_decoded_frame_ends_the_run_and_late_ones_are_ignored():
    concealer = Concealer(max_frames=1)
    concealer.decoded(_frame(0, 0.0))
    concealer.decoded(_frame(1, 0.1))
    assert concealer.conceal() is not None and concealer.conceal() is None
    concealer.decoded(_frame(1, 0.9))  # not newer than the last decoded frame
    concealer.decoded(_frame(3, 0.2))
    again = concealer.conceal()
    assert again is not None and again.seq == 4
    assert float(again.features[0]) == pytest.approx(0.25)


def test_extrapolation_stays_inside_the_schema_ranges():
    concealer = Concealer()
    concealer.decoded(_frame(0, 0.0))
    concealer.decoded(_frame(1, 0.99))
    made = concealer.conceal()
    assert made is not None
    schema = motion_schema()
    assert np.all(made.features[:20] == schema.groups[0].high)
    assert np.all(made.features[20:] == np.float32(1.98))


def test_negative_run_length_is_refused():
    with pytest.raises(ValueError, match="max_frames must be 0 or more, got -1"):
        Concealer(max_frames=-1)
