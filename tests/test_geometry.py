"""Coordinate conventions, soft-argmax, 2×2 inverse and the random equivariance warp."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fomm_kp.geometry import (
    RandomWarp,
    coordinate_grid,
    from_pixels,
    gaussian_heatmaps,
    heatmap_statistics,
    inverse_2x2,
    soft_argmax,
    to_pixels,
)


def test_grid_is_grid_sample_convention() -> None:
    h, w = 5, 7
    grid = coordinate_grid(h, w)
    assert grid.shape == (h, w, 2)
    # x varies along columns, y along rows; pixel centres at (2 i + 1) / size - 1.
    assert torch.allclose(grid[0, 0], torch.tensor([1 / w - 1, 1 / h - 1]))
    assert torch.allclose(grid[h - 1, w - 1], torch.tensor([1 - 1 / w, 1 - 1 / h]))
    assert torch.allclose(grid[2, 3], torch.tensor([(2 * 3 + 1) / w - 1, (2 * 2 + 1) / h - 1]))
    # Sampling an image at its own grid (align_corners=False) gives the image back exactly.
    image = torch.rand(1, 3, h, w)
    sampled = F.grid_sample(image, grid.unsqueeze(0), mode="bilinear", align_corners=False)
    assert torch.allclose(sampled, image, atol=1e-6)


def test_to_pixels_of_grid_is_pixel_index() -> None:
    h, w = 6, 9
    pixels = to_pixels(coordinate_grid(h, w), w, h)
    cols, rows = torch.meshgrid(torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="xy")
    assert torch.allclose(pixels[..., 0], cols, atol=1e-5)
    assert torch.allclose(pixels[..., 1], rows, atol=1e-5)
    # Corners of the image, not pixel centres, sit at ±1.
    corners = to_pixels(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), w, h)
    assert torch.allclose(corners, torch.tensor([[-0.5, -0.5], [w - 0.5, h - 0.5]]))


def test_from_pixels_inverts_to_pixels() -> None:
    points = torch.rand(4, 10, 2, dtype=torch.float64) * 2 - 1
    for w, h in ((64, 48), (33, 17), (1, 1)):
        assert torch.allclose(from_pixels(to_pixels(points, w, h), w, h), points, atol=1e-12)
        pix = torch.rand(10, 2, dtype=torch.float64) * 100
        assert torch.allclose(to_pixels(from_pixels(pix, w, h), w, h), pix, atol=1e-9)


def test_soft_argmax_of_one_hot_is_that_pixel() -> None:
    h, w = 12, 16
    heat = torch.zeros(2, 3, h, w)
    spots = [[(2, 5), (11, 0), (7, 15)], [(0, 0), (6, 8), (3, 3)]]
    for b, row in enumerate(spots):
        for k, (i, j) in enumerate(row):
            heat[b, k, i, j] = 1
    points = to_pixels(soft_argmax(heat), w, h)
    expected = torch.tensor([[[j, i] for i, j in row] for row in spots], dtype=torch.float32)
    assert torch.allclose(points, expected, atol=1e-4)


def test_soft_argmax_of_peaked_gaussian_is_its_centre() -> None:
    h, w = 40, 50
    centre = torch.tensor([[[0.23, -0.41], [-0.6, 0.55]]])
    heat = gaussian_heatmaps(centre, h, w, variance=0.003)
    heat = heat / heat.sum(dim=(2, 3), keepdim=True)
    assert torch.allclose(soft_argmax(heat), centre, atol=1e-4)


def test_gaussian_heatmap_peaks_at_one_on_the_keypoint() -> None:
    grid = coordinate_grid(8, 8)
    keypoint = grid[3, 5].view(1, 1, 2)
    heat = gaussian_heatmaps(keypoint, 8, 8, variance=0.01)
    assert heat.shape == (1, 1, 8, 8)
    assert heat[0, 0, 3, 5] == pytest.approx(1.0)
    assert heat.max() == heat[0, 0, 3, 5]


def test_heatmap_statistics_scores_and_covariance() -> None:
    h, w = 32, 32
    uniform = torch.full((1, 1, h, w), 1.0 / (h * w))
    one_hot = torch.zeros(1, 1, h, w)
    one_hot[0, 0, 10, 20] = 1
    variance = 0.01
    gauss = gaussian_heatmaps(torch.zeros(1, 1, 2), h, w, variance)
    gauss = gauss / gauss.sum()
    heat = torch.cat([uniform, one_hot, gauss], dim=1)
    mean, cov, score = heatmap_statistics(heat)
    assert mean.shape == (1, 3, 2) and cov.shape == (1, 3, 2, 2) and score.shape == (1, 3)
    assert score[0, 0] == pytest.approx(0.0, abs=1e-5)
    assert score[0, 1] == pytest.approx(1.0, abs=1e-5)
    assert 0.2 < score[0, 2] < 0.9
    assert torch.allclose(cov[0, 1], torch.zeros(2, 2), atol=1e-6)
    # A sampled isotropic gaussian: covariance ≈ variance · I (plus the pixel-grid quantisation).
    assert torch.allclose(cov[0, 2], variance * torch.eye(2), atol=1e-3 * variance + (2 / h) ** 2 / 12)
    assert torch.allclose(mean[0, 0], torch.zeros(2), atol=1e-6)


def _well_conditioned(n: int, generator: torch.Generator) -> torch.Tensor:
    """Random 2×2 matrices ``R(a) diag(s) R(b)`` with singular values in [0.3, 3] and either sign of det."""
    def rotation(angle: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(angle), torch.sin(angle)
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)

    angles = torch.rand(2, n, generator=generator, dtype=torch.float64) * 2 * math.pi
    singular = 0.3 + 2.7 * torch.rand(n, 2, generator=generator, dtype=torch.float64)
    signs = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0).to(torch.float64)
    singular[:, 1] *= signs
    return rotation(angles[0]) @ torch.diag_embed(singular) @ rotation(angles[1])


def test_inverse_2x2_matches_linalg_inv() -> None:
    generator = torch.Generator().manual_seed(0)
    matrices = _well_conditioned(500, generator).view(5, 100, 2, 2)
    assert (torch.linalg.det(matrices) < 0).any() and (torch.linalg.det(matrices) > 0).any()
    assert torch.allclose(inverse_2x2(matrices), torch.linalg.inv(matrices), atol=1e-10)
    as_float = matrices.float()
    assert torch.allclose(inverse_2x2(as_float), torch.linalg.inv(as_float), atol=1e-4)


def test_inverse_2x2_of_singular_is_finite() -> None:
    singular = torch.tensor([[[1.0, 2.0], [2.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    assert torch.isfinite(inverse_2x2(singular)).all()


def test_random_warp_identity_when_sigmas_are_zero() -> None:
    warp = RandomWarp(3, sigma_affine=0.0, sigma_tps=0.0)
    points = torch.rand(3, 11, 2) * 2 - 1
    assert torch.allclose(warp.warp_coordinates(points), points, atol=1e-6)
    images = torch.rand(3, 2, 16, 20)
    assert torch.allclose(warp.warp_images(images), images, atol=1e-5)
    assert torch.allclose(warp.jacobian(points), torch.eye(2).expand(3, 11, 2, 2), atol=1e-5)


def test_random_warp_is_reproducible_with_a_generator() -> None:
    a = RandomWarp(2, generator=torch.Generator().manual_seed(5))
    b = RandomWarp(2, generator=torch.Generator().manual_seed(5))
    c = RandomWarp(2, generator=torch.Generator().manual_seed(6))
    points = torch.rand(2, 4, 2) * 2 - 1
    assert torch.equal(a.warp_coordinates(points), b.warp_coordinates(points))
    assert not torch.allclose(a.warp_coordinates(points), c.warp_coordinates(points))


@pytest.mark.parametrize("max_rotation", [0.0, math.pi])
def test_warp_property_blob_follows_the_point_back(max_rotation: float) -> None:
    """Draw a blob at p, warp the image, soft-argmax the warped blob: warping that point back gives p."""
    torch.manual_seed(0)
    batch, size = 6, 96
    points = (torch.rand(batch, 1, 2) - 0.5) * 0.9  # keep the blob well inside after warping
    blobs = gaussian_heatmaps(points, size, size, variance=0.0015)  # (B, 1, H, W), σ ≈ 1.9 px
    warp = RandomWarp(batch, sigma_affine=0.1, sigma_tps=0.01, generator=torch.Generator().manual_seed(1),
                      max_rotation=max_rotation)
    warped = warp.warp_images(blobs)
    warped = warped / warped.sum(dim=(2, 3), keepdim=True)
    found = soft_argmax(warped)  # the blob's position in the warped image
    mapped_back = warp.warp_coordinates(found)
    tolerance = 2 / size * 0.25  # a quarter of a pixel
    moved = (found - points).norm(dim=-1)
    assert (moved > 4 * tolerance).all(), "the warp must move the blobs for this test to mean anything"
    assert (mapped_back - points).norm(dim=-1).max() < tolerance
    # The other direction is wrong: warping the original point forward does not land on the blob.
    assert (warp.warp_coordinates(points) - found).norm(dim=-1).max() > 4 * tolerance


def _away_from_kinks(points: torch.Tensor, warp: RandomWarp, margin: float) -> torch.Tensor:
    """Keep points whose coordinates are ``margin`` away from every control-point line (the TPS
    kernel uses the L1 distance, which is not differentiable there)."""
    lines = warp.control_points[:, 0].unique().to(points.dtype)
    distance = (points.unsqueeze(-1) - lines).abs().amin(dim=-1).amin(dim=-1)  # (B, N)
    return distance > margin


def test_random_warp_jacobian_matches_finite_differences() -> None:
    batch, count, step = 3, 40, 1e-6
    warp = RandomWarp(batch, sigma_affine=0.1, sigma_tps=0.02, generator=torch.Generator().manual_seed(2))
    points = (torch.rand(batch, count, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1) * 0.95
    keep = _away_from_kinks(points, warp, margin=1e-3)
    assert keep.float().mean() > 0.8
    jacobian = warp.jacobian(points).detach()
    assert jacobian.shape == (batch, count, 2, 2)
    numeric = torch.empty_like(jacobian)
    for j in range(2):  # column j: derivative with respect to input coordinate j
        offset = torch.zeros(2, dtype=torch.float64)
        offset[j] = step
        numeric[..., :, j] = (warp.warp_coordinates(points + offset) - warp.warp_coordinates(points - offset)) / (2 * step)
    error = (jacobian - numeric).abs().amax(dim=(-2, -1))
    assert error[keep].max() < 1e-6
    # The TPS part makes the jacobian vary from point to point (not a constant affine).
    assert (jacobian[0] - jacobian[0, :1]).abs().max() > 1e-3


def test_warp_with_one_generator_per_element_draws_each_alone() -> None:
    """Element i of a batch drawn with generators [g0, g1, ...] is the warp g_i alone would draw:
    a batch split across processes gets the same warps."""
    def generators(seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    whole = RandomWarp(3, generator=generators([7, 8, 9]), max_rotation=1.0)
    alone = RandomWarp(1, generator=generators([8]), max_rotation=1.0)
    assert torch.equal(whole.theta[1:2], alone.theta)
    assert torch.equal(whole.control_params[1:2], alone.control_params)
    assert not torch.equal(whole.theta[0], whole.theta[1])
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        RandomWarp(3, generator=generators([1, 2]))
