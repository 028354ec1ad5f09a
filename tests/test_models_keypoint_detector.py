import torch

from models.config import get_preset
from models.keypoint_detector import KPDetector


def test_keypoints_lie_in_range_and_jacobians_start_at_identity() -> None:
    torch.manual_seed(0)
    detector = KPDetector(get_preset("tiny")).eval()
    with torch.no_grad():
        out = detector(torch.rand(2, 3, 32, 32))
    assert out["value"].shape == (2, 10, 2)
    assert out["value"].abs().max() <= 1.0
    assert torch.allclose(out["jacobian"], torch.eye(2).expand(2, 10, 2, 2), atol=1e-5)


def test_keypoints_follow_a_shifted_blob() -> None:
    """Soft-argmax is translation-equivariant up to borders: a moved blob moves the keypoints."""
    torch.manual_seed(0)
    detector = KPDetector(get_preset("tiny")).eval()
    image = torch.zeros(1, 3, 32, 32)
    image[:, :, 8:16, 8:16] = 1.0
    shifted = torch.roll(image, shifts=(8, 8), dims=(2, 3))
    with torch.no_grad():
        before, after = detector(image)["value"], detector(shifted)["value"]
    assert not torch.allclose(before, after)
