"""Occlusion-aware generator: encode the source, warp its features by the dense flow, decode.

With ``blend`` the output is composed in pixels: ``m · warp(source) + (1 − m) · decoded``, where a
learned mask ``m`` (1 = take the warped source pixel) comes from the decoder. The decoder then only
has to paint what the source cannot show (occluded or newly visible parts); identity and detail
come from the source's own pixels, which also lets the output be rendered at the source's full
resolution (:mod:`fomm_kp.animation.upsample`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fomm_kp.config import GeneratorConfig
from fomm_kp.geometry import coordinate_grid
from fomm_kp.models.blocks import ConvBlock, DownBlock, ResBlock, UpBlock

__all__ = ["Generator", "GeneratorOutput", "warp"]


class GeneratorOutput(NamedTuple):
    prediction: torch.Tensor  # (B, C, H, W) in [0, 1]
    deformed: torch.Tensor  # (B, C, H, W): the source warped by the flow alone
    # (B, 1, H, W) in [0, 1]: how much of each output pixel is the warped source (the blend mask,
    # or without blend the occlusion map resized to H × W); None when neither exists.
    visibility: torch.Tensor | None = None


def warp(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``images`` (B, C, H, W) at ``flow`` (B, h, w, 2), resizing the flow to H × W first."""
    h, w = images.shape[-2:]
    if flow.shape[1] != h or flow.shape[2] != w:
        # Resize the displacement, not the absolute coordinates: bilinear resizing clamps at the
        # border, which would pull the outermost pixels of even an identity flow inwards.
        coarse = coordinate_grid(flow.shape[1], flow.shape[2], flow.device, flow.dtype)
        displacement = F.interpolate((flow - coarse).permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False)
        flow = coordinate_grid(h, w, flow.device, flow.dtype) + displacement.permute(0, 2, 3, 1)
    return F.grid_sample(images, flow.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=False)


class Generator(nn.Module):
    def __init__(self, config: GeneratorConfig, num_channels: int = 3) -> None:
        super().__init__()
        be, mf = config.block_expansion, config.max_features
        self.first = ConvBlock(num_channels, be, kernel_size=7)
        widths = [be] + [min(mf, be * 2 ** (i + 1)) for i in range(config.num_down_blocks)]
        self.down = nn.ModuleList(DownBlock(widths[i], widths[i + 1]) for i in range(config.num_down_blocks))
        self.bottleneck = nn.Sequential(*(ResBlock(widths[-1]) for _ in range(config.num_bottleneck_blocks)))
        self.up = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i]) for i in reversed(range(config.num_down_blocks))
        )
        self.final = nn.Conv2d(be, num_channels, kernel_size=7, padding=3)
        self.mask = nn.Conv2d(be, 1, kernel_size=7, padding=3) if config.blend else None

    def forward(self, source: torch.Tensor, flow: torch.Tensor, occlusion: torch.Tensor | None) -> GeneratorOutput:
        features = self.first(source)
        for block in self.down:
            features = block(features)
        features = warp(features, flow)
        if occlusion is not None:
            if occlusion.shape[-2:] != features.shape[-2:]:
                occlusion = F.interpolate(occlusion, size=features.shape[-2:], mode="bilinear", align_corners=False)
            features = features * occlusion.to(features.dtype)
        features = self.bottleneck(features)
        for block in self.up:
            features = block(features)
        decoded = torch.sigmoid(self.final(features).float())
        deformed = warp(source, flow)
        if self.mask is not None:
            visibility = torch.sigmoid(self.mask(features).float())
            return GeneratorOutput(visibility * deformed.float() + (1 - visibility) * decoded, deformed, visibility)
        if occlusion is not None and occlusion.shape[-2:] != decoded.shape[-2:]:
            occlusion = F.interpolate(occlusion, size=decoded.shape[-2:], mode="bilinear", align_corners=False)
        return GeneratorOutput(decoded, deformed, occlusion)
