"""Keypoint detector: hourglass → K heatmaps → soft-argmax keypoints, jacobians, confidence."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from fomm_kp.config import DetectorConfig
from fomm_kp.geometry import heatmap_statistics
from fomm_kp.models.blocks import Hourglass

__all__ = ["KeypointDetector", "KeypointOutput", "KeypointNetwork"]


class KeypointOutput(NamedTuple):
    """Detector output; coordinates are normalised to [-1, 1] of the input frame (x first)."""

    keypoints: torch.Tensor  # (B, K, 2)
    jacobians: torch.Tensor  # (B, K, 2, 2); identity when the jacobian head is off
    heatmaps: torch.Tensor  # (B, K, h, w), each sums to 1
    covariances: torch.Tensor  # (B, K, 2, 2), normalised units²
    scores: torch.Tensor  # (B, K) in [0, 1]: heatmap concentration


class NetworkShape(Protocol):
    """What every detector network's config says: :class:`~fomm_kp.config.DetectorConfig` (teacher) or
    :class:`~fomm_kp.models.student.StudentConfig`."""

    num_keypoints: int
    input_size: int
    temperature: float
    estimate_jacobian: bool


class KeypointNetwork(Protocol):
    """A detector network (an ``nn.Module``): images ``(B, 3, S, S)`` in [0, 1] → :class:`KeypointOutput`
    in normalised crop coordinates, ``S = config.input_size``. The teacher's :class:`KeypointDetector`
    and the distilled :class:`~fomm_kp.models.student.StudentDetector` are used interchangeably through it
    (export, the PyTorch backend, distillation)."""

    config: NetworkShape

    def __call__(self, images: torch.Tensor) -> KeypointOutput: ...


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` images to ``size × size`` (antialiased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrinking = images.shape[-1] > size
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)


class KeypointDetector(nn.Module):
    """Finds K keypoints with local affine jacobians in ``(B, 3, H, W)`` images in [0, 1].

    Frames are resized to ``config.input_size`` first, so any input size is accepted.
    """

    def __init__(self, config: DetectorConfig, num_channels: int = 3) -> None:
        super().__init__()
        self.config = config
        k = config.num_keypoints
        self.hourglass = Hourglass(num_channels, config.block_expansion, config.num_blocks, config.max_features)
        kernel = config.head_kernel
        self.heatmap_head = nn.Conv2d(self.hourglass.out_channels, k, kernel_size=kernel, padding=kernel // 2)
        if config.estimate_jacobian:
            self.jacobian_head = nn.Conv2d(self.hourglass.out_channels, 4 * k, kernel_size=kernel, padding=kernel // 2)
            nn.init.zeros_(self.jacobian_head.weight)
            with torch.no_grad():
                self.jacobian_head.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(k))
        else:
            self.jacobian_head = None

    def forward(self, images: torch.Tensor) -> KeypointOutput:
        if images.ndim != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
        x = resize_images(images, self.config.input_size)
        features = self.hourglass(x)
        logits = self.heatmap_head(features)
        b, k, h, w = logits.shape
        heatmaps = F.softmax(logits.float().view(b, k, -1) / self.config.temperature, dim=2).view(b, k, h, w)
        keypoints, covariances, scores = heatmap_statistics(heatmaps)
        if self.jacobian_head is not None:
            raw = self.jacobian_head(features).float().view(b, k, 4, h, w)
            jacobians = (raw * heatmaps.unsqueeze(2)).sum(dim=(3, 4)).view(b, k, 2, 2)
        else:
            jacobians = torch.eye(2, device=images.device).expand(b, k, 2, 2)
        return KeypointOutput(keypoints, jacobians, heatmaps, covariances, scores)
