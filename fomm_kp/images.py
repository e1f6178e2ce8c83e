"""Frames at the boundary, images inside: uint8 ``(B, H, W, 3)`` ↔ float ``(B, 3, H, W)`` in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch

from fomm_kp.errors import FommError

__all__ = ["frames_to_images", "images_to_frames", "frames_to_array"]


def frames_to_images(frames: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 frames ``(B, H, W, 3)`` (numpy or torch) → float images ``(B, 3, H, W)`` in [0, 1] on ``device``."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise FommError(f"frames must be uint8 (B, H, W, 3), got shape {tuple(frames.shape)}")
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    return frames.to(device).permute(0, 3, 1, 2).float() / 255


def images_to_frames(images: torch.Tensor) -> np.ndarray:
    """float images ``(B, 3, H, W)`` in [0, 1] → uint8 frames ``(B, H, W, 3)`` (rounded, clipped)."""
    return (images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def frames_to_array(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 crops ``(B, S, S, 3)`` with ``S = size`` → float32 numpy ``(B, 3, S, S)`` in [0, 1]: the input of
    exported detector graphs."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1:] != (size, size, 3) or frames.dtype != np.uint8:
        raise FommError(f"crops must be uint8 (B, {size}, {size}, 3), got {frames.dtype} {frames.shape}")
    images = np.empty((frames.shape[0], 3, size, size), dtype=np.float32)
    np.multiply(frames.transpose(0, 3, 1, 2), np.float32(1 / 255), out=images, casting="unsafe")
    return images
