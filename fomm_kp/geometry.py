"""Coordinate grids, soft-argmax, gaussians, 2×2 algebra and random affine + TPS warps.

Normalised coordinates follow ``torch.nn.functional.grid_sample(align_corners=False)``: x and y in
[-1, 1], x first, pixel centres at ``(2 i + 1) / size - 1``. :func:`to_pixels` and
:func:`from_pixels` convert to and from pixel coordinates (top-left pixel centre = 0).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "coordinate_grid",
    "soft_argmax",
    "heatmap_statistics",
    "gaussian_heatmaps",
    "inverse_2x2",
    "RandomWarp",
    "Generators",
    "to_pixels",
    "from_pixels",
]


def coordinate_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(H, W, 2)`` grid of normalised pixel-centre coordinates, ``[..., 0] = x``, ``[..., 1] = y``."""
    xs = (2 * torch.arange(width, device=device, dtype=dtype) + 1) / width - 1
    ys = (2 * torch.arange(height, device=device, dtype=dtype) + 1) / height - 1
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], dim=-1)


def to_pixels(points: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """Normalised ``(..., 2)`` coordinates → pixel coordinates of a ``width × height`` image."""
    scale = points.new_tensor([width, height])
    return (points + 1) * scale / 2 - 0.5


def from_pixels(points: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """Pixel coordinates → normalised ``(..., 2)`` coordinates."""
    scale = points.new_tensor([width, height])
    return (points + 0.5) * 2 / scale - 1


def soft_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Expected coordinate of normalised heatmaps ``(B, K, H, W)`` (each sums to 1) → ``(B, K, 2)``."""
    grid = coordinate_grid(heatmaps.shape[2], heatmaps.shape[3], heatmaps.device, heatmaps.dtype)
    return torch.einsum("bkhw,hwc->bkc", heatmaps, grid)


def heatmap_statistics(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean ``(B, K, 2)``, covariance ``(B, K, 2, 2)`` and concentration score ``(B, K)`` of heatmaps.

    The score is ``1 - entropy / log(H W)``: 0 for a uniform heatmap, 1 for a single peak.
    """
    b, k, h, w = heatmaps.shape
    grid = coordinate_grid(h, w, heatmaps.device, heatmaps.dtype)
    mean = torch.einsum("bkhw,hwc->bkc", heatmaps, grid)
    centred = grid.view(1, 1, h, w, 2) - mean.view(b, k, 1, 1, 2)
    covariance = torch.einsum("bkhw,bkhwi,bkhwj->bkij", heatmaps, centred, centred)
    entropy = -(heatmaps * torch.log(heatmaps.clamp_min(1e-12))).sum(dim=(2, 3))
    score = (1 - entropy / torch.log(torch.tensor(float(h * w), dtype=heatmaps.dtype))).clamp(0, 1)
    return mean, covariance, score


def gaussian_heatmaps(keypoints: torch.Tensor, height: int, width: int, variance: float) -> torch.Tensor:
    """Unnormalised gaussians ``exp(-|z - kp|² / 2σ²)`` at keypoints ``(B, K, 2)`` → ``(B, K, H, W)``."""
    grid = coordinate_grid(height, width, keypoints.device, keypoints.dtype)
    diff = grid.view(1, 1, height, width, 2) - keypoints.view(*keypoints.shape[:2], 1, 1, 2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


def inverse_2x2(matrices: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of ``(..., 2, 2)`` matrices (``torch.inverse`` has no ONNX op).

    The determinant is kept away from zero (sign preserved) so that degenerate jacobians early in
    training do not produce infinities.
    """
    a, b = matrices[..., 0, 0], matrices[..., 0, 1]
    c, d = matrices[..., 1, 0], matrices[..., 1, 1]
    det = a * d - b * c
    sign = torch.where(det < 0, -torch.ones_like(det), torch.ones_like(det))
    det = sign * det.abs().clamp_min(1e-6)
    inv = torch.stack([torch.stack([d, -b], dim=-1), torch.stack([-c, a], dim=-1)], dim=-2)
    return inv / det[..., None, None]


# One generator for the batch, or one per batch element (whose draws then do not depend on the others).
Generators = torch.Generator | Sequence[torch.Generator] | None


def _draw(sample: Callable[..., torch.Tensor], shape: tuple[int, ...], generator: Generators) -> torch.Tensor:
    """``sample(*shape, generator=...)``; with one generator per element of dimension 0, element i
    is drawn from generator i alone."""
    if generator is None or isinstance(generator, torch.Generator):
        return sample(*shape, generator=generator)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
    return torch.cat([sample(1, *shape[1:], generator=g) for g in generator])


class RandomWarp:
    """A random affine + thin-plate-spline transform per batch element (FOMM's equivariance warp).

    ``generator`` draws the parameters: one for the whole batch, or one per element (so that an
    element's warp is the same whichever batch, or process, it is drawn in).

    ``max_rotation`` (radians) adds a large rotation to the affine part: for top views, where a
    keypoint must stay on its body part whichever way the subject faces.

    ``warp_coordinates`` maps points of the *warped* image to points of the original image, which
    is what ``grid_sample`` needs: ``warp_images(x)[p] = x[warp_coordinates(p)]``.
    """

    def __init__(
        self,
        batch_size: int,
        sigma_affine: float = 0.05,
        sigma_tps: float = 0.005,
        points_tps: int = 5,
        device=None,
        generator: Generators = None,
        max_rotation: float = 0.0,
    ) -> None:
        def normal(*shape: int) -> torch.Tensor:
            return _draw(torch.randn, shape, generator).to(device)

        eye = torch.eye(2, 3).to(device)
        self.theta = eye.unsqueeze(0) + sigma_affine * normal(batch_size, 2, 3)
        if max_rotation > 0:  # then a rotation about the centre by an angle in ±max_rotation (radians)
            angle = (2 * _draw(torch.rand, (batch_size,), generator) - 1).to(device) * max_rotation
            cos, sin = torch.cos(angle), torch.sin(angle)
            rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
            self.theta = rotation @ self.theta
        axis = torch.linspace(-1, 1, points_tps)
        yy, xx = torch.meshgrid(axis, axis, indexing="ij")
        self.control_points = torch.stack([xx, yy], dim=-1).view(-1, 2).to(device)
        self.control_params = sigma_tps * normal(batch_size, 1, points_tps**2)

    def warp_coordinates(self, coordinates: torch.Tensor) -> torch.Tensor:
        """``(B, N, 2)`` normalised points → ``(B, N, 2)`` transformed points."""
        theta = self.theta.to(coordinates.dtype)
        affine = torch.einsum("bij,bnj->bni", theta[:, :, :2], coordinates) + theta[:, None, :, 2]
        diff = coordinates.unsqueeze(2) - self.control_points.to(coordinates.dtype).view(1, 1, -1, 2)
        dist = diff.abs().sum(-1)
        radial = dist**2 * torch.log(dist + 1e-6)
        tps = (radial * self.control_params.to(coordinates.dtype)).sum(dim=2, keepdim=True)
        return affine + tps

    def jacobian(self, coordinates: torch.Tensor) -> torch.Tensor:
        """Jacobian ``(B, N, 2, 2)`` of :meth:`warp_coordinates` at ``coordinates`` (autograd)."""
        with torch.enable_grad():
            points = coordinates.detach().requires_grad_(True)
            warped = self.warp_coordinates(points)
            grad_x = torch.autograd.grad(warped[..., 0].sum(), points, create_graph=True)[0]
            grad_y = torch.autograd.grad(warped[..., 1].sum(), points, create_graph=True)[0]
        return torch.stack([grad_x, grad_y], dim=-2)

    def warp_images(self, images: torch.Tensor) -> torch.Tensor:
        """Warp ``(B, C, H, W)`` images (border padding)."""
        b, _, h, w = images.shape
        grid = coordinate_grid(h, w, images.device, images.dtype).view(1, -1, 2).expand(b, -1, -1)
        grid = self.warp_coordinates(grid).view(b, h, w, 2)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
