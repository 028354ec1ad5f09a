import torch

from models.blocks import AntiAliasInterpolation2d, Hourglass, kp2gaussian, make_coordinate_grid


def test_coordinate_grid_puts_corner_pixels_at_plus_minus_one() -> None:
    grid = make_coordinate_grid(3, 5)
    assert grid.shape == (3, 5, 2)
    assert grid[0, 0].tolist() == [-1.0, -1.0]
    assert grid[2, 4].tolist() == [1.0, 1.0]
    assert grid[1, 2].tolist() == [0.0, 0.0]


def test_gaussian_peaks_at_the_keypoint() -> None:
    grid = make_coordinate_grid(9, 9)
    heatmap = kp2gaussian(torch.tensor([[[0.5, -0.5]]]), grid, kp_variance=0.01)
    assert heatmap.shape == (1, 1, 9, 9)
    row, column = divmod(int(heatmap.argmax()), 9)
    assert (row, column) == (2, 6) and float(heatmap.max()) == 1.0


def test_hourglass_keeps_resolution_and_appends_input_channels() -> None:
    hourglass = Hourglass(block_expansion=4, in_features=3, num_blocks=3, max_features=16)
    out = hourglass(torch.rand(2, 3, 16, 16))
    assert out.shape == (2, 4 + 3, 16, 16)
    assert hourglass.out_filters == 7


def test_anti_alias_downscale_keeps_a_flat_image_flat() -> None:
    down = AntiAliasInterpolation2d(channels=3, scale=0.25)
    out = down(torch.full((1, 3, 32, 32), 0.5))
    assert out.shape == (1, 3, 8, 8)
    # Away from the zero padding, a normalised blur of a constant is that constant.
    assert torch.allclose(out[:, :, 2:-2, 2:-2], torch.full((1, 3, 4, 4), 0.5), atol=1e-6)
