"""What a student learns from: crops taken as tracking takes them, a held-out split, and augmented copies."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fomm_kp.config import DataConfig
from fomm_kp.crops import CropSettings
from fomm_kp.deploy.distill_config import DistillConfig
from fomm_kp.errors import FommError
from fomm_kp.localize.crop_rule import model_crops
from fomm_kp.video import crop_frame, iter_frames, probe, resize_frame

__all__ = ["TrackingCrops", "tracking_crops", "join_clips", "heldout_split", "clips_heldout_split", "augment_crops"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingCrops:
    """Crops as tracking takes them: ``crops`` uint8 ``(N, S, S, 3)``, ``frame_indices`` ``(N,)``,
    ``boxes`` ``(N, 4)`` in original pixels, and the same crops at other sides in ``resized``
    (``{side: (N, side, side, 3)}``)."""

    crops: np.ndarray
    frame_indices: np.ndarray
    boxes: np.ndarray
    resized: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)


def tracking_crops(
    video: str | os.PathLike, crop: CropSettings, data: DataConfig, size: int, max_frames: int = 3000,
    extra_sizes: tuple[int, ...] = (),
) -> TrackingCrops:
    """Read up to ``max_frames`` evenly strided frames and crop them as :func:`fomm_kp.track` does for
    a model that looks where ``crop`` says (same localisation, box side or fixed crop), resized (PIL,
    as tracking) to ``size`` and to each of ``extra_sizes``; frames where the subject is not found
    are skipped."""
    info = probe(video)
    located = model_crops(video, crop, data)
    whole = np.array([0, 0, info.width, info.height], dtype=np.float64)
    box_of = None if located is None else located.box_of()
    stride = max(1, int(math.ceil(info.num_frames / max_frames)))
    sizes = (size, *[s for s in extra_sizes if s != size])
    crops: dict[int, list[np.ndarray]] = {s: [] for s in sizes}
    indices, boxes = [], []
    for index, frame in iter_frames(video, stride=stride):
        box = whole if box_of is None else box_of.get(index)
        if box is None:
            continue
        cut = crop_frame(frame, box)
        for s in sizes:
            crops[s].append(resize_frame(cut, s))
        indices.append(index)
        boxes.append(np.asarray(box, dtype=np.float64))
    if len(indices) < 10:
        raise FommError(f"only {len(indices)} usable frame(s) in {video}: distillation needs at least 10")
    log.info("read %d crops of %s (stride %d, %s px)", len(indices), video, stride, "/".join(map(str, sizes)))
    stacked = {s: np.stack(v) for s, v in crops.items()}
    return TrackingCrops(stacked.pop(size), np.asarray(indices, dtype=np.int64), np.stack(boxes), stacked)


def join_clips(parts: list[TrackingCrops]) -> TrackingCrops:
    """The crops of several clips as one set, clip after clip (``frame_indices`` are each clip's own)."""
    if len(parts) == 1:
        return parts[0]
    return TrackingCrops(np.concatenate([p.crops for p in parts]), np.concatenate([p.frame_indices for p in parts]),
                         np.concatenate([p.boxes for p in parts]),
                         {size: np.concatenate([p.resized[size] for p in parts]) for size in parts[0].resized})


def clips_heldout_split(counts: list[int], fraction: float, blocks: int, guard: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`heldout_split` within each clip of :func:`join_clips`' set (``counts`` crops per clip, in
    order): every clip holds out its share, and no guard or block spans two clips."""
    train, heldout, offset = [], [], 0
    for count in counts:
        part = heldout_split(count, fraction, blocks, guard)
        train.append(part[0] + offset)
        heldout.append(part[1] + offset)
        offset += count
    return np.concatenate(train), np.concatenate(heldout)


def heldout_split(count: int, fraction: float, blocks: int, guard: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, heldout)`` sample indices: ``blocks`` contiguous held-out blocks spread evenly over
    ``range(count)`` covering ``fraction`` of it, with ``guard`` samples on each side used by neither."""
    if not 0 < fraction < 1:
        raise FommError(f"holdout fraction must be in (0, 1), got {fraction}")
    blocks = max(1, min(blocks, count // (4 + 2 * guard)))  # short clips: fewer blocks, so some frames train
    length = max(1, int(round(count * fraction / blocks)))
    heldout = np.zeros(count, dtype=bool)
    excluded = np.zeros(count, dtype=bool)
    for i in range(blocks):
        start = int(round((i + 0.5) * count / blocks - length / 2))
        start = min(max(start, 0), count - length)
        heldout[start:start + length] = True
        excluded[max(0, start - guard):start + length + guard] = True
    train = np.flatnonzero(~excluded)
    if len(train) < 2:
        raise FommError(f"{count} frames are too few to hold out {fraction:.0%} and train on the rest")
    return train, np.flatnonzero(heldout)


def augment_crops(work: torch.Tensor, sizes: tuple[int, ...], config: DistillConfig,
             generator: torch.Generator) -> list[torch.Tensor]:
    """Random affine + photometric augmentation of ``(B, 3, W, W)`` images in [0, 1], resized
    (antialiased) to each of ``sizes`` and quantised to 8 bits like real frames: one uint8
    ``(B, size, size, 3)`` per size, all views of the same augmented image."""
    b = work.shape[0]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator)

    angle = torch.deg2rad(uniform(-config.rotation, config.rotation, b))
    scale = uniform(1 - config.scale, 1 + config.scale, b)
    shift = uniform(-2 * config.shift, 2 * config.shift, b, 2)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if config.flip else torch.ones(b)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(work.shape), align_corners=False)
    images = F.grid_sample(work, grid, mode="bilinear", padding_mode="border", align_corners=False)
    j = config.color_jitter
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    contrast = uniform(1 - j, 1 + j, b, 1, 1, 1)
    brightness = uniform(-j / 2, j / 2, b, 1, 1, 1)
    gain = uniform(1 - j / 3, 1 + j / 3, b, 3, 1, 1)
    images = (images - mean) * contrast * gain + mean + brightness
    images = images + uniform(0, config.noise, b, 1, 1, 1) * torch.randn(images.shape, generator=generator)
    views = []
    for size in sizes:
        view = images if images.shape[-1] == size else F.interpolate(
            images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        views.append((view.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous())
    return views
