"""Convolutional building blocks shared by the FOMM networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvBlock", "DownBlock", "UpBlock", "ResBlock", "Hourglass"]


class ConvBlock(nn.Module):
    """conv → batch norm → ReLU, size-preserving."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock(nn.Module):
    """ConvBlock then 2× average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = ConvBlock(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.block(x), 2)


class UpBlock(nn.Module):
    """2× nearest upsampling then ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = ConvBlock(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResBlock(nn.Module):
    """Pre-activation residual block, channels preserved."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return x + out


class Hourglass(nn.Module):
    """U-Net style encoder–decoder with skip connections (FOMM's hourglass).

    Input ``(B, in_channels, H, W)`` with H, W divisible by ``2**num_blocks``; output
    ``(B, out_channels, H, W)`` where ``out_channels = block_expansion + in_channels``.
    """

    def __init__(self, in_channels: int, block_expansion: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        widths = [min(max_features, block_expansion * 2 ** (i + 1)) for i in range(num_blocks)]
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.down.append(DownBlock(previous, width))
            previous = width
        self.up = nn.ModuleList()
        skip_widths = [in_channels] + widths[:-1]
        current = widths[-1]
        for i in reversed(range(num_blocks)):
            out = min(max_features, block_expansion * 2**i)
            self.up.append(UpBlock(current, out))
            current = out + skip_widths[i]
        self.out_channels = current

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        for block in self.down:
            skips.append(block(skips[-1]))
        out = skips.pop()
        for block in self.up:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out
