"""Self-supervised losses: weight-free reconstruction pyramid (L1 + SSIM, motion-weighted),
optional VGG-19 perceptual loss from local weights, keypoint/jacobian equivariance, a separation
prior and the background prior; :func:`objective` is the weighted sum a training step minimises."""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from fomm_kp.config import Config
from fomm_kp.errors import FommError
from fomm_kp.geometry import Generators, RandomWarp, inverse_2x2
from fomm_kp.models.fomm import FOMM, Reconstruction
from fomm_kp.models.keypoint_detector import KeypointOutput, resize_images

__all__ = [
    "ssim_map", "motion_weights", "reconstruction_loss", "equivariance_losses", "rotation_equivariance_loss",
    "separation_loss", "foreground_loss", "on_subject_share", "VGG19Perceptual", "objective",
]


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM of ``(B, C, H, W)`` images in [0, 1] over 3×3 windows, ``(B, C, H, W)``."""
    c1, c2 = 0.01**2, 0.03**2
    pad = (1, 1, 1, 1)
    x, y = F.pad(x, pad, mode="reflect"), F.pad(y, pad, mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    var_x = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    var_y = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    cov = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return num / den


def motion_weights(source: torch.Tensor, driving: torch.Tensor, strength: float) -> torch.Tensor:
    """``(B, 1, H, W)`` weights ``1 + strength · d / max(d)`` where d is the blurred frame difference.

    Pixels that change between the two frames (where the subject moved) weigh up to
    ``1 + strength`` times more than still ones, so the keypoints are pulled to what moves.
    """
    if strength <= 0:
        return torch.ones_like(source[:, :1])
    diff = (driving - source).abs().mean(dim=1, keepdim=True)
    diff = F.avg_pool2d(diff, 5, stride=1, padding=2, count_include_pad=False)
    peak = diff.amax(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    return 1 + strength * diff / peak


def _resize(images: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1.0:
        return images
    return F.interpolate(images, scale_factor=scale, mode="bilinear", align_corners=False, antialias=True)


def reconstruction_loss(
    prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
    scales: tuple[float, ...], l1: float, ssim: float,
) -> torch.Tensor:
    """Weighted L1 + (1 − SSIM)/2 summed over an image pyramid.

    The weights are normalised per sample, so that a sample's loss does not depend on the others in
    its batch: the mean over a batch split across processes (DDP) is the mean over the whole batch.
    """
    total = prediction.new_zeros(())
    for scale in scales:
        p, t, w = _resize(prediction, scale), _resize(target, scale), _resize(weights, scale)
        w = w / w.mean(dim=(1, 2, 3), keepdim=True)
        if l1 > 0:
            total = total + l1 * (w * (p - t).abs()).mean()
        if ssim > 0 and min(p.shape[-2:]) >= 4:
            total = total + ssim * (w * (1 - ssim_map(p, t)).clamp(0, 2) / 2).mean()
    return total


def foreground_loss(heatmaps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean heatmap mass outside the foreground: ``heatmaps`` ``(B, K, h, w)`` (each sums to 1),
    ``masks`` ``(B, 1, H, W)`` in [0, 1] (1 = foreground). Frames with an empty mask do not count."""
    masks = F.interpolate(masks.float(), size=heatmaps.shape[-2:], mode="area")
    outside = (heatmaps.float() * (1.0 - masks)).sum(dim=(2, 3)).mean(dim=1)  # (B,)
    usable = (masks.amax(dim=(1, 2, 3)) > 0).float()
    return (outside * usable).sum() / usable.sum().clamp_min(1.0)


@torch.no_grad()
def on_subject_share(keypoints: torch.Tensor, masks: torch.Tensor) -> float:
    """Share of keypoints ``(B, K, 2)`` (normalised, −1 … 1) that fall on their frame's foreground
    ``masks`` ``(B, 1, S, S)``, over frames whose mask is not empty (NaN when none is): the
    training log's "on the subject"."""
    size = masks.shape[-1]
    cells = ((keypoints.float() + 1.0) / 2.0 * size).floor().long().clamp(0, size - 1)  # (B, K, 2): x, y
    rows = torch.arange(len(masks), device=masks.device)[:, None].expand_as(cells[..., 0])
    on = masks[rows, 0, cells[..., 1], cells[..., 0]] > 0
    usable = masks.flatten(1).amax(dim=1) > 0
    return float(on[usable].float().mean()) if usable.any() else float("nan")


def separation_loss(keypoints: torch.Tensor, sigma: float) -> torch.Tensor:
    """Mean over keypoint pairs of ``exp(-d² / 2σ²)`` for ``(B, K, 2)`` normalised keypoints.

    A prior that keeps the K keypoints from collapsing onto one spot, so that they spread over the
    subject (Zhang et al. 2018 use the same form). ``sigma`` is in normalised units (frame = 2).
    """
    count = keypoints.shape[1]
    if count < 2:
        return keypoints.new_zeros(())
    squared = (keypoints.unsqueeze(1) - keypoints.unsqueeze(2)).pow(2).sum(-1)
    off_diagonal = ~torch.eye(count, dtype=torch.bool, device=keypoints.device)
    return torch.exp(-squared[:, off_diagonal] / (2 * sigma**2)).mean()


def equivariance_losses(
    detector: nn.Module, driving: torch.Tensor, kp_driving: KeypointOutput,
    generator: Generators = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FOMM's equivariance: detect on a randomly warped frame and map back through the warp.

    Returns ``(value_loss, jacobian_loss)``: L1 between the keypoints of the frame and the warped-back
    keypoints of the warped frame, and L1 between ``J_d⁻¹ · (∂T · J_t)`` and the identity.
    """
    warp = RandomWarp(driving.shape[0], device=driving.device, generator=generator)
    warped = warp.warp_images(driving)
    kp_warped: KeypointOutput = detector(warped)
    mapped = warp.warp_coordinates(kp_warped.keypoints)
    value = (kp_driving.keypoints - mapped).abs().mean()
    transform_jacobian = warp.jacobian(kp_warped.keypoints)
    product = inverse_2x2(kp_driving.jacobians) @ (transform_jacobian @ kp_warped.jacobians)
    eye = torch.eye(2, device=driving.device, dtype=product.dtype)
    jacobian = (eye - product).abs().mean()
    return value, jacobian


def rotation_equivariance_loss(
    detector: nn.Module, images: torch.Tensor, keypoints: torch.Tensor, generator: Generators = None,
) -> torch.Tensor:
    """Keypoints must turn with the image: detect on a copy rotated by a random angle (any angle,
    plus FOMM's small affine + TPS) and map back; L1 to ``keypoints`` ``(B, K, 2)``.

    For top views, where the subject faces every way: without it a keypoint can stay put in the
    crop while the subject turns under it. Only positions: jacobians keep FOMM's small-warp loss.
    """
    warp = RandomWarp(images.shape[0], device=images.device, generator=generator, max_rotation=math.pi)
    kp_warped: KeypointOutput = detector(warp.warp_images(images))
    return (keypoints - warp.warp_coordinates(kp_warped.keypoints)).abs().mean()


_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)
_VGG19_TAPS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in torchvision's indexing


class VGG19Perceptual(nn.Module):
    """Perceptual loss on VGG-19 features, with weights read from a local torchvision-layout file.

    No weights are downloaded: pass the path of ``vgg19-dcbb9e9d.pth`` (or any state dict whose keys
    are ``features.<i>.weight/bias``). The network is frozen.
    """

    def __init__(self, weights_path: str | os.PathLike) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU()]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        if not os.path.isfile(weights_path):
            raise FommError(
                f"VGG-19 weights not found at {weights_path}: place torchvision's vgg19 .pth file there "
                "(nothing is downloaded), or set loss.perceptual to 0"
            )
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise FommError(f"{weights_path} does not hold VGG-19 weights: expected a state dict")
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        try:
            result = self.features.load_state_dict(features, strict=False)
        except RuntimeError as exc:
            raise FommError(f"{weights_path} does not hold VGG-19 weights: {str(exc).splitlines()[0]}") from None
        if result.missing_keys:  # a partly random VGG would be a silent fallback
            raise FommError(
                f"{weights_path} does not hold VGG-19 weights: features.{result.missing_keys[0]} is missing"
            )
        self.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = (prediction - self.mean) / self.std
        y = (target - self.mean) / self.std
        total = prediction.new_zeros(())
        for i, layer in enumerate(self.features[: _VGG19_TAPS[-1] + 1]):
            x, y = layer(x), layer(y)
            if i in _VGG19_TAPS:
                total = total + (x - y.detach()).abs().mean()
        return total


def objective(
    network: FOMM, out: Reconstruction, source: torch.Tensor, driving: torch.Tensor, config: Config,
    generator: Generators = None, perceptual: VGG19Perceptual | None = None,
    masks: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The weighted loss terms of one training step, by name (their sum is minimised).

    ``out`` is ``network(source, driving)``; ``generator`` draws the equivariance warps; ``perceptual``
    is given when ``config.loss.perceptual > 0``; ``masks`` ``(2B, 1, S, S)`` (foreground of the
    source frames, then of the driving frames) when ``config.loss.foreground > 0`` and
    ``config.data.foreground`` is on (resolved before training).
    """
    loss = config.loss
    prediction = out.prediction.float()
    # The reconstruction is compared at its own size (the detector may have seen finer frames).
    small_source, small_driving = (resize_images(x, prediction.shape[-1]) for x in (source, driving))
    weights = motion_weights(small_source, small_driving, loss.motion_weight)
    terms = {"reconstruction": reconstruction_loss(prediction, small_driving, weights, loss.scales, loss.l1, loss.ssim)}
    if perceptual is not None:
        terms["perceptual"] = loss.perceptual * perceptual(prediction, small_driving)
    if loss.warp > 0:
        terms["warp"] = loss.warp * reconstruction_loss(out.deformed.float(), small_driving, weights, loss.scales,
                                                        loss.l1, loss.ssim)
    if loss.equivariance_value > 0 or loss.equivariance_jacobian > 0:
        value, jacobian = equivariance_losses(network.detector, driving, out.kp_driving, generator)
        terms["equivariance"] = loss.equivariance_value * value
        if config.model.detector.estimate_jacobian:
            terms["equivariance_jacobian"] = loss.equivariance_jacobian * jacobian
    if config.data.any_orientation == "on" and loss.rotation_equivariance > 0:
        terms["rotation_equivariance"] = loss.rotation_equivariance * rotation_equivariance_loss(
            network.detector, driving, out.kp_driving.keypoints, generator)
    if loss.foreground > 0 and masks is not None and config.data.foreground == "on":
        heatmaps = torch.cat([out.kp_source.heatmaps, out.kp_driving.heatmaps])
        terms["foreground"] = loss.foreground * foreground_loss(heatmaps, masks)
    if loss.separation > 0:
        points = torch.cat([out.kp_source.keypoints, out.kp_driving.keypoints]).float()
        terms["separation"] = loss.separation * separation_loss(points, loss.separation_sigma)
    if out.background is not None and loss.background_prior > 0:
        eye = torch.eye(2, 3, device=source.device)
        terms["background"] = loss.background_prior * (out.background - eye).abs().mean()
    return terms
