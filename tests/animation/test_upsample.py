"""Full-resolution rendering (detail transfer): exact identities and a moving sharp pattern."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fomm_kp.animation.upsample import full_resolution, upsample_images
from fomm_kp.geometry import coordinate_grid
from fomm_kp.models.generator import warp


def _checkerboard(height: int, width: int, cell: int = 2) -> torch.Tensor:
    """A sharp colour pattern ``(1, 3, H, W)`` that a low-resolution model cannot hold."""
    yy, xx = np.mgrid[:height, :width]
    board = ((yy // cell + xx // cell) % 2).astype(np.float32)
    rgb = np.stack([board, 1 - board, 0.5 * board + 0.25])
    return torch.from_numpy(rgb)[None]


def _small(images: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _shift_flow(batch: int, size: int, dx: float) -> torch.Tensor:
    """A flow that takes each output pixel from ``dx`` (normalised units) to its right in the source."""
    grid = coordinate_grid(size, size).unsqueeze(0).repeat(batch, 1, 1, 1)
    grid[..., 0] += dx
    return grid


def test_at_the_model_size_the_output_is_the_generators():
    source = torch.rand(1, 3, 32, 32)
    prediction = torch.rand(2, 3, 32, 32)
    flow = _shift_flow(2, 16, 0.1)
    out = full_resolution(prediction, flow, torch.rand(2, 1, 32, 32), source, source)
    torch.testing.assert_close(out, prediction, atol=1e-6, rtol=0)


def test_still_visible_source_comes_back_at_full_resolution():
    full = _checkerboard(128, 96)
    small = _small(full, 32)
    identity = coordinate_grid(16, 16).unsqueeze(0)
    prediction = warp(small, identity)  # what a perfect model gives at 32 px: the blurred source
    out = full_resolution(prediction, identity, torch.ones(1, 1, 32, 32), small, full)
    assert out.shape == (1, 3, 128, 96)
    torch.testing.assert_close(out, full, atol=1e-5, rtol=0)
    plain = upsample_images(prediction, 128, 96)  # plain upsampling loses the pattern
    assert (plain - full).abs().mean() > 0.2


def test_occluded_parts_keep_the_generators_pixels():
    full = _checkerboard(64, 64)
    small = _small(full, 16)
    prediction = torch.full((1, 3, 16, 16), 0.3)
    visibility = torch.zeros(1, 1, 16, 16)
    visibility[..., :, 8:] = 1  # the right half is visible, the left half occluded
    out = full_resolution(prediction, coordinate_grid(16, 16)[None], visibility, small, full)
    left, right = out[..., :, :24], out[..., :, 40:]
    torch.testing.assert_close(left, torch.full_like(left, 0.3), atol=1e-6, rtol=0)
    assert (right - 0.3).abs().mean() > 0.2  # detail of the source added where visible


def test_a_shift_moves_the_full_resolution_source():
    full = _checkerboard(128, 128, cell=4)
    small = _small(full, 32)
    shift_pixels = 8  # a whole number of full-resolution pixels: 8/128 of the width
    flow = _shift_flow(1, 16, 2 * shift_pixels / 128)
    prediction = warp(small, flow)
    out = full_resolution(prediction, flow, None, small, full)
    inside = out[..., :, : 128 - shift_pixels]
    torch.testing.assert_close(inside, full[..., :, shift_pixels:], atol=1e-4, rtol=0)
