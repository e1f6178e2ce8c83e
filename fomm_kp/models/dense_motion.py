"""Dense motion network: from sparse keypoint motions to a dense flow and an occlusion map."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fomm_kp.config import DenseMotionConfig
from fomm_kp.geometry import coordinate_grid, gaussian_heatmaps, inverse_2x2
from fomm_kp.models.blocks import Hourglass
from fomm_kp.models.keypoint_detector import KeypointOutput, resize_images

__all__ = ["DenseMotionNetwork", "MotionOutput", "BackgroundMotion", "sparse_motions"]


class MotionOutput(NamedTuple):
    flow: torch.Tensor  # (B, h, w, 2): for each driving pixel, where to sample the source (normalised)
    occlusion: torch.Tensor | None  # (B, 1, h, w) in [0, 1]; 1 = visible in the source
    masks: torch.Tensor  # (B, K+1, h, w) soft assignment of pixels to motions; slot 0 = background


def sparse_motions(
    kp_source: KeypointOutput, kp_driving: KeypointOutput, height: int, width: int,
    background: torch.Tensor | None,
) -> torch.Tensor:
    """The K+1 candidate motions ``(B, K+1, h, w, 2)``.

    Slot 0 is the background (identity, or the learned global affine ``background`` (B, 2, 3));
    slot k is the first-order approximation ``kp_src + J_src J_drv⁻¹ (z − kp_drv)``.
    """
    b, k = kp_source.keypoints.shape[:2]
    grid = coordinate_grid(height, width, kp_source.keypoints.device, kp_source.keypoints.dtype)
    z = grid.view(1, 1, height, width, 2)
    jac = kp_source.jacobians @ inverse_2x2(kp_driving.jacobians)  # (B, K, 2, 2)
    local = torch.einsum("bkij,bkhwj->bkhwi", jac, z - kp_driving.keypoints.view(b, k, 1, 1, 2))
    motions = local + kp_source.keypoints.view(b, k, 1, 1, 2)
    if background is None:
        bg = grid.unsqueeze(0).expand(b, -1, -1, -1)
    else:
        bg = torch.einsum("bij,hwj->bhwi", background[:, :, :2], grid) + background[:, None, None, :, 2]
    return torch.cat([bg.unsqueeze(1), motions], dim=1)


class BackgroundMotion(nn.Module):
    """Predicts a global affine (B, 2, 3) from source to driving: camera or background motion.

    Initialised to the identity. Switched off (identity) at animation time.
    """

    def __init__(self, num_channels: int, width: int = 32, size: int = 64) -> None:
        super().__init__()
        self.size = size
        layers: list[nn.Module] = []
        previous = 2 * num_channels
        for i in range(4):
            out = width * 2 ** min(i, 2)
            layers += [nn.Conv2d(previous, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            previous = out
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Linear(previous, 6)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        x = torch.cat([resize_images(source, self.size), resize_images(driving, self.size)], dim=1)
        delta = self.head(self.encoder(x).mean(dim=(2, 3))).float().view(-1, 2, 3)
        eye = torch.eye(2, 3, device=source.device).unsqueeze(0)
        return eye + delta


class DenseMotionNetwork(nn.Module):
    """Combines the K+1 sparse motions into a dense flow with soft masks, plus an occlusion map."""

    def __init__(self, config: DenseMotionConfig, num_keypoints: int, num_channels: int = 3) -> None:
        super().__init__()
        self.config = config
        slots = num_keypoints + 1
        in_channels = slots * (num_channels + 1)
        self.hourglass = Hourglass(in_channels, config.block_expansion, config.num_blocks, config.max_features)
        self.mask_head = nn.Conv2d(self.hourglass.out_channels, slots, kernel_size=7, padding=3)
        self.occlusion_head = (
            nn.Conv2d(self.hourglass.out_channels, 1, kernel_size=7, padding=3) if config.estimate_occlusion else None
        )

    def forward(
        self, source: torch.Tensor, kp_source: KeypointOutput, kp_driving: KeypointOutput,
        background: torch.Tensor | None = None,
    ) -> MotionOutput:
        size = self.config.input_size
        src = resize_images(source, size)
        b, c = src.shape[:2]
        k = kp_source.keypoints.shape[1]
        motions = sparse_motions(kp_source, kp_driving, size, size, background)  # (B, K+1, h, w, 2)
        heat = gaussian_heatmaps(kp_driving.keypoints, size, size, self.config.kp_variance) - gaussian_heatmaps(
            kp_source.keypoints, size, size, self.config.kp_variance
        )
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1)  # (B, K+1, h, w)
        repeated = src.unsqueeze(1).expand(b, k + 1, c, size, size).reshape(b * (k + 1), c, size, size)
        deformed = F.grid_sample(
            repeated, motions.reshape(b * (k + 1), size, size, 2).to(repeated.dtype),
            mode="bilinear", padding_mode="border", align_corners=False,
        ).view(b, k + 1, c, size, size)
        x = torch.cat([heat.unsqueeze(2).to(deformed.dtype), deformed], dim=2).view(b, -1, size, size)
        features = self.hourglass(x)
        masks = F.softmax(self.mask_head(features).float(), dim=1)
        flow = (masks.unsqueeze(-1) * motions).sum(dim=1)
        occlusion = torch.sigmoid(self.occlusion_head(features).float()) if self.occlusion_head is not None else None
        return MotionOutput(flow, occlusion, masks)
