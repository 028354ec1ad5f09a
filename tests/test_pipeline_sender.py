"""The Sender against the stages strung by hand, as `encode` and the benchmarks did before it."""

from __future__ import annotations

import numpy as np
import pytest

from codec import MotionEncoder, motion_schema
from codec.keyframe import encode_keyframe
from models import MotionExtractor
from models.face_crop import FaceBox, FaceCropper, center_crop, crop
from pipeline.sender import Sender
from tests.face_clip import drifting_portrait
from tests.models_helpers import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")


def hand_wired(extractor: MotionExtractor, frames: np.ndarray) -> tuple[bytes, list[bytes]]:
    """crop (a detection per frame, smoothed) -> extract -> encode; the key frame of frame 0."""
    config = extractor.config
    encoder = MotionEncoder(motion_schema(config.num_kp, config.estimate_jacobian), fps=25.0)
    cropper, box = FaceCropper(), None
    keyframe, packets = b"", []
    for index, frame in enumerate(frames):
        found = cropper.detect(frame)
        if found is not None:
            box = found if box is None else box.blend(found, cropper.smoothing)
        face = (
            center_crop(frame, extractor.size) if box is None else crop(frame, box, extractor.size)
        )
        if index == 0:
            keyframe = encode_keyframe(face)
        packets.append(encoder.encode(extractor.extract(face), index * 40))
    return keyframe, packets


def test_sender_codes_what_the_hand_wired_stages_coded() -> None:
    extractor = MotionExtractor(preset="tiny")
    frames = np.concatenate([np.full((1, 200, 200, 3), 90, np.uint8), drifting_portrait(4)])
    expected_keyframe, expected = hand_wired(extractor, frames)
    sender = Sender(extractor, fps=25.0, detect_every=1)
    sent = [sender.send(frame, index * 40) for index, frame in enumerate(frames)]
    sender.close()
    assert [s.packet for s in sent] == expected
    assert sender.keyframe(sent[0].face) == expected_keyframe
    assert sender.tracker.faceless == 1  # the first frame has no face: its centre square
    assert sender.schema == motion_schema(10, True) and sent[1].features.shape == (60,)
    assert isinstance(sender.tracker._box, FaceBox)


def test_a_sender_given_features_loads_no_face_detector() -> None:
    extractor = MotionExtractor(preset="tiny")
    sender = Sender(extractor, level=2)
    features = extractor.extract(drifting_portrait(1)[0][:32, :32])
    packet = sender.encode(features, capture_ms=0, prompt_id=3)
    assert packet == MotionEncoder(sender.schema, level=2).encode(features, 0, 3)
    assert "tracker" not in vars(sender)
    sender.close()
