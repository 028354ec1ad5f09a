import torch

from models.blocks import make_coordinate_grid
from models.config import get_preset
from models.dense_motion import DenseMotionNetwork, inverse_2x2


def _keypoints(batch: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    value = torch.rand(batch, 10, 2, generator=generator) * 1.6 - 0.8
    jacobian = torch.eye(2) + 0.1 * torch.randn(batch, 10, 2, 2, generator=generator)
    return {"value": value, "jacobian": jacobian}


def test_inverse_2x2_matches_torch_inverse() -> None:
    matrices = _keypoints(3)["jacobian"]
    assert torch.allclose(inverse_2x2(matrices), torch.inverse(matrices), atol=1e-6)


def test_zero_motion_gives_the_identity_flow() -> None:
    torch.manual_seed(0)
    network = DenseMotionNetwork(get_preset("tiny")).eval()
    kp = _keypoints(2)
    with torch.no_grad():
        out = network(torch.rand(2, 3, 32, 32), kp, kp)
    identity = make_coordinate_grid(16, 16).expand(2, 16, 16, 2)
    assert out["deformation"].shape == (2, 16, 16, 2)
    assert torch.allclose(out["deformation"], identity, atol=1e-5)
    assert out["mask"].shape == (2, 11, 16, 16)
    assert torch.allclose(out["mask"].sum(1), torch.ones(2, 16, 16), atol=1e-5)
    assert out["occlusion_map"].shape == (2, 2, 16, 16)  # one channel per generator scale
    assert out["sparse_deformed"].shape == (2, 11, 3, 16, 16)


def test_a_keypoint_shift_moves_its_sparse_motion_by_the_same_amount() -> None:
    network = DenseMotionNetwork(get_preset("tiny")).eval()
    source = _keypoints()
    driving = {"value": source["value"] + 0.1, "jacobian": source["jacobian"]}
    grid = make_coordinate_grid(16, 16)
    sparse = network._sparse_motions(grid, driving, source)
    # With equal Jacobians every keypoint's motion is the translation kp_source - kp_driving.
    assert torch.allclose(sparse[:, 1:] - grid, torch.full_like(sparse[:, 1:], -0.1), atol=1e-5)
