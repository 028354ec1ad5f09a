"""The Receiver against the stages strung by hand, and a Sender -> Receiver round trip."""

from __future__ import annotations

import numpy as np
import pytest

from codec import MotionDecoder, motion_schema
from codec.keyframe import decode_keyframe
from models import Renderer, get_preset
from pipeline.receiver import Receiver
from pipeline.sender import Sender
from tests.face_clip import drifting_portrait
from tests.models_helpers import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    with Renderer(preset="tiny") as tiny:
        yield tiny


def test_round_trip_renders_what_the_hand_wired_stages_rendered(renderer: Renderer) -> None:
    sender = Sender(renderer.extractor, fps=25.0, detect_every=1)
    sent = [sender.send(frame, index * 40) for index, frame in enumerate(drifting_portrait(4))]
    sender.close()
    keyframe = sender.keyframe(sent[0].face)

    decoder = MotionDecoder(motion_schema(10, True))
    renderer.set_reference(decode_keyframe(keyframe))
    expected = []
    for item in sent:
        decoded = decoder.decode(item.packet)
        assert decoded is not None
        expected.append(renderer.render(decoded.features))

    receiver = Receiver(renderer.config, renderer)
    reference = receiver.set_keyframe(keyframe)
    shown = [receiver.receive(item.packet) for item in sent]
    assert np.array_equal(reference, decode_keyframe(keyframe))
    assert all(image is not None for image in shown)
    assert np.array_equal(np.stack(shown), np.stack(expected))  # type: ignore[arg-type]
    assert receiver.decoder.stats.decoded == len(sent)


def test_a_packet_whose_reference_was_lost_renders_nothing(renderer: Renderer) -> None:
    sender = Sender(renderer.extractor, fps=25.0)
    features = renderer.extractor.extract(drifting_portrait(1)[0][:32, :32])
    packets = [sender.encode(features + 0.01 * index, index * 40) for index in range(3)]
    receiver = Receiver(renderer.config, renderer)
    receiver.set_keyframe(sender.keyframe(drifting_portrait(1)[0][:32, :32]))
    assert receiver.receive(packets[0]) is not None
    assert receiver.receive(packets[2]) is None  # predicted from packet 1, which never came
    assert sum(receiver.decoder.stats.dropped.values()) == 1


def test_a_renderer_of_another_motion_layout_is_refused(renderer: Renderer) -> None:
    receiver = Receiver(get_preset("tiny", num_kp=5))
    with pytest.raises(ValueError) as refused:
        receiver.attach(renderer)
    assert str(refused.value) == (
        "the renderer reads 60 motion numbers a frame, the stream carries 30: load the "
        "checkpoint of the stream's preset"
    )
    with pytest.raises(RuntimeError, match="no renderer yet"):
        receiver.set_reference(np.zeros((32, 32, 3), np.uint8))


def test_the_receiver_conceals_an_overdue_frame_from_the_decoded_motion(
    renderer: Renderer,
) -> None:
    sender = Sender(renderer.extractor, fps=25.0, target_kbps=None)
    base = np.zeros(sender.schema.size, np.float32)
    receiver = Receiver(renderer.config, renderer)
    assert receiver.conceal() is None  # nothing decoded yet
    frames = [receiver.decode(sender.encode(base + 0.05 * i, i * 40)) for i in range(2)]
    assert frames[0] is not None and frames[1] is not None
    concealed = receiver.conceal()
    assert concealed is not None and concealed.concealed
    assert (concealed.seq, concealed.capture_time_ms) == (2, 80)
    velocity = frames[1].features - frames[0].features
    assert np.abs(velocity).max() > 0.03  # the motion moved, so the test can tell
    assert np.allclose(concealed.features, frames[1].features + velocity, atol=1e-6)
