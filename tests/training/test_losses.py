"""Reconstruction pyramid, SSIM, motion weights and equivariance losses."""

from __future__ import annotations

from pathlib import Path

import pytest
import numpy as np
import torch
from torch import nn

from fomm_kp.config import builtin_config
from fomm_kp.errors import FommError
from fomm_kp.geometry import RandomWarp, gaussian_heatmaps, heatmap_statistics
from fomm_kp.models import KeypointDetector, KeypointOutput
from fomm_kp.training import losses
from fomm_kp.training.losses import VGG19Perceptual, equivariance_losses, motion_weights, reconstruction_loss, ssim_map


def test_ssim_of_identical_images_is_one() -> None:
    x = torch.rand(2, 3, 16, 20)
    assert torch.allclose(ssim_map(x, x), torch.ones_like(x), atol=1e-5)


def test_ssim_is_symmetric_and_lower_for_different_images() -> None:
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    assert torch.allclose(ssim_map(x, y), ssim_map(y, x), atol=1e-6)
    assert ssim_map(x, y).mean() < 0.5
    noisy = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    assert ssim_map(x, y).mean() < ssim_map(x, noisy).mean() < 1


def test_motion_weights() -> None:
    source = torch.zeros(2, 3, 24, 24)
    driving = source.clone()
    driving[:, :, 4:10, 14:20] = 1.0  # something moved there
    weights = motion_weights(source, driving, strength=4.0)
    assert weights.shape == (2, 1, 24, 24)
    assert weights.min() >= 1 - 1e-6
    assert weights.max() == pytest.approx(5.0, abs=1e-5)
    assert weights[:, :, 7, 17].min() > 4.5  # inside the change
    assert torch.allclose(weights[:, :, 20:, :5], torch.ones(2, 1, 4, 5))  # far away
    assert torch.equal(motion_weights(source, driving, 0.0), torch.ones(2, 1, 24, 24))
    # Identical frames: no motion, no emphasis (and no division by zero).
    assert torch.allclose(motion_weights(source, source, 4.0), torch.ones(2, 1, 24, 24))


def test_reconstruction_loss_zero_for_identical_images() -> None:
    x = torch.rand(2, 3, 32, 32)
    weights = torch.ones(2, 1, 32, 32)
    loss = reconstruction_loss(x, x, weights, (1.0, 0.5, 0.25, 0.125), l1=1.0, ssim=1.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)


def test_reconstruction_loss_positive_finite_and_weight_scale_free() -> None:
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    weights = 1 + torch.rand(2, 1, 32, 32)
    loss = reconstruction_loss(x, y, weights, (1.0, 0.5), l1=1.0, ssim=1.0)
    assert torch.isfinite(loss) and loss > 0.1
    # Weights are normalised by their mean: scaling them changes nothing.
    scaled = reconstruction_loss(x, y, 7 * weights, (1.0, 0.5), l1=1.0, ssim=1.0)
    assert scaled.item() == pytest.approx(loss.item(), rel=1e-5)
    l1_only = reconstruction_loss(x, y, torch.ones_like(weights), (1.0,), l1=1.0, ssim=0.0)
    assert l1_only.item() == pytest.approx((x - y).abs().mean().item(), rel=1e-5)


def test_reconstruction_loss_gradient_is_finite() -> None:
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    y = torch.rand(1, 3, 16, 16)
    reconstruction_loss(x, y, torch.ones(1, 1, 16, 16), (1.0, 0.5, 0.25, 0.125), 1.0, 1.0).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


class BlobDetector(nn.Module):
    """Treats channel 0 as a heatmap: an exactly equivariant 'detector' for bright blobs."""

    def forward(self, images: torch.Tensor) -> KeypointOutput:
        heat = images[:, :1].clamp_min(0)
        heat = heat / heat.sum(dim=(2, 3), keepdim=True)
        mean, cov, score = heatmap_statistics(heat)
        b = images.shape[0]
        return KeypointOutput(mean, torch.eye(2).expand(b, 1, 2, 2), heat, cov, score)


class FixedDetector(nn.Module):
    """Returns the same keypoint whatever the image: the opposite of equivariant."""

    def forward(self, images: torch.Tensor) -> KeypointOutput:
        b = images.shape[0]
        kp = torch.tensor([[[0.3, -0.2]]]).expand(b, 1, 2)
        eye = torch.eye(2).expand(b, 1, 2, 2)
        return KeypointOutput(kp, eye, torch.ones(b, 1, 4, 4) / 16, eye * 0, torch.ones(b, 1))


def _blob_images(batch: int, size: int = 64) -> torch.Tensor:
    centres = (torch.rand(batch, 1, 2, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.8
    blob = gaussian_heatmaps(centres, size, size, variance=0.002)
    return blob.expand(batch, 3, size, size).contiguous()


def test_equivariance_value_loss_small_for_an_equivariant_detector() -> None:
    images = _blob_images(4)
    generator = torch.Generator().manual_seed(1)
    blob = BlobDetector()
    value, jacobian = equivariance_losses(blob, images, blob(images), generator)
    fixed = FixedDetector()
    value_fixed, _ = equivariance_losses(fixed, images, fixed(images), torch.Generator().manual_seed(1))
    assert torch.isfinite(value) and torch.isfinite(jacobian)
    assert value < 2e-3  # a tenth of a pixel at 64 px
    assert value_fixed > 10 * value  # a detector that ignores the image is penalised
    assert jacobian > 1e-3  # identity jacobians are not equivariant under a random affine


def test_rotation_equivariance_spares_an_equivariant_detector_only() -> None:
    images = _blob_images(8)
    blob, fixed = BlobDetector(), FixedDetector()
    small, _ = equivariance_losses(fixed, images, fixed(images), torch.Generator().manual_seed(2))
    value = losses.rotation_equivariance_loss(blob, images, blob(images).keypoints, torch.Generator().manual_seed(2))
    value_fixed = losses.rotation_equivariance_loss(fixed, images, fixed(images).keypoints,
                                                    torch.Generator().manual_seed(2))
    assert value < 5e-3
    assert value_fixed > 3 * small  # any angle moves points far more than FOMM's small affine


class NoWarp(RandomWarp):
    def __init__(self, batch_size: int, device=None, generator=None) -> None:
        super().__init__(batch_size, sigma_affine=0.0, sigma_tps=0.0, device=device, generator=generator)


def test_equivariance_losses_zero_under_an_identity_warp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(losses, "RandomWarp", NoWarp)
    torch.manual_seed(0)
    detector = KeypointDetector(builtin_config("tiny").model.detector)
    with torch.no_grad():  # give the jacobian head non-trivial output
        detector.jacobian_head.weight.normal_(0, 0.05)
    detector.eval()
    images = torch.rand(3, 3, 32, 32)
    kp = detector(images)
    assert (kp.jacobians - torch.eye(2)).abs().max() > 1e-2
    value, jacobian = equivariance_losses(detector, images, kp)
    assert value.item() == pytest.approx(0.0, abs=1e-5)
    assert jacobian.item() == pytest.approx(0.0, abs=1e-4)


def test_equivariance_losses_train_the_detector() -> None:
    torch.manual_seed(0)
    detector = KeypointDetector(builtin_config("tiny").model.detector)
    images = torch.rand(2, 3, 32, 32)
    kp = detector(images)
    value, jacobian = equivariance_losses(detector, images, kp, torch.Generator().manual_seed(0))
    (value + jacobian).backward()
    grads = [p.grad for p in detector.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_perceptual_loss_needs_local_weights(tmp_path: Path) -> None:
    with pytest.raises(FommError, match="VGG-19 weights not found"):
        VGG19Perceptual(tmp_path / "missing.pth")


def test_perceptual_loss_rejects_files_that_are_not_vgg19(tmp_path: Path) -> None:
    wrong_shape = tmp_path / "wrong_shape.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3), "features.0.bias": torch.zeros(3)}, wrong_shape)
    with pytest.raises(FommError, match="does not hold VGG-19 weights"):
        VGG19Perceptual(wrong_shape)
    unrelated = tmp_path / "unrelated.pth"
    torch.save({"conv.weight": torch.zeros(8, 3, 3, 3)}, unrelated)
    with pytest.raises(FommError, match="does not hold VGG-19 weights"):
        VGG19Perceptual(unrelated)


def test_separation_loss_is_high_for_collapsed_keypoints_and_pushes_them_apart() -> None:
    from fomm_kp.training.losses import separation_loss

    collapsed = torch.zeros(2, 5, 2)
    assert separation_loss(collapsed, 0.1).item() == pytest.approx(1.0)
    spread = torch.tensor([[[-0.8, -0.8], [0.8, -0.8], [0.0, 0.0], [-0.8, 0.8], [0.8, 0.8]]])
    assert separation_loss(spread, 0.1).item() < 1e-6
    assert separation_loss(torch.zeros(1, 1, 2), 0.1).item() == 0.0
    points = torch.tensor([[[0.0, 0.0], [0.05, 0.0]]], requires_grad=True)
    separation_loss(points, 0.1).backward()
    assert points.grad[0, 0, 0] > 0 and points.grad[0, 1, 0] < 0  # descent moves them apart


def test_foreground_loss_is_the_heatmap_mass_outside_the_mask() -> None:
    from fomm_kp.training.losses import foreground_loss

    heatmaps = torch.zeros(2, 3, 8, 8)
    heatmaps[:, :, 2, 2] = 1.0  # every keypoint at pixel (2, 2)
    masks = torch.zeros(2, 1, 16, 16)
    masks[0, :, 4:6, 4:6] = 1.0  # frame 0: foreground exactly under the keypoints (8 -> 16 px)
    masks[1, :, 12:, 12:] = 1.0  # frame 1: foreground elsewhere
    assert torch.isclose(foreground_loss(heatmaps, masks), torch.tensor(0.5))
    empty = torch.zeros(2, 1, 16, 16)
    assert foreground_loss(heatmaps, empty) == 0  # frames without foreground do not count
    heatmaps.requires_grad_(True)
    foreground_loss(heatmaps, masks).backward()
    assert heatmaps.grad[1].abs().sum() > 0 and heatmaps.grad[0, :, 2, 2].abs().sum() == 0


def test_on_subject_share_counts_keypoints_on_their_frames_foreground() -> None:
    from fomm_kp.training.losses import on_subject_share

    masks = torch.zeros(3, 1, 8, 8)
    masks[0, :, :4, :4] = 1.0  # frame 0: upper-left quarter
    masks[1, :, 4:, 4:] = 1.0  # frame 1: lower-right quarter; frame 2: empty, not counted
    keypoints = torch.tensor([[[-0.5, -0.5], [0.5, 0.5]], [[0.5, 0.5], [0.6, 0.7]], [[0.0, 0.0], [0.0, 0.0]]])
    assert on_subject_share(keypoints, masks) == 0.75
    assert np.isnan(on_subject_share(keypoints, torch.zeros(3, 1, 8, 8)))
