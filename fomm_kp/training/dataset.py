"""Training frames of one clip and random (source, driving) pairs from them.

All frames are held in memory at training resolution (a 3,000-frame clip at 128 px is ~150 MB),
and pairs are drawn per step: there are no epochs, so no empty split and no zero-batch epochs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch

from fomm_kp.errors import FommError
from fomm_kp.localize.crop_rule import SubjectCrops, SubjectsCrops
from fomm_kp.training.streams import data_streams
from fomm_kp.video import crop_frame, iter_frames, probe, resize_frame

__all__ = ["TrainingFrames", "load_training_frames", "foreground_masks", "FramePairs", "Pair"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingFrames:
    """``frames`` uint8 ``(T, S, S, 3)``; ``frame_indices`` ``(T,)``; ``boxes`` ``(T, 4)`` crops used, in pixels
    (``(T, 5)`` when crops were turned to the subject's heading); ``subjects`` int ``(T,)`` which subject
    each crop shows when there are several (crops of one subject together, in time order), else None."""

    frames: np.ndarray
    frame_indices: np.ndarray
    boxes: np.ndarray
    fps: float
    video: str
    masks: np.ndarray | None = None  # uint8 (T, S, S): 1 where a frame differs from the static scene
    subjects: np.ndarray | None = None


def _subjects_frames(video: str | os.PathLike, size: int, stride: int, crops: SubjectsCrops,
                     fps: float) -> TrainingFrames:
    """The crops of every subject where it was found, one subject after another."""
    rows = crops.rows()
    per: list[list[tuple[int, np.ndarray, np.ndarray]]] = [[] for _ in range(crops.count)]
    for index, frame in iter_frames(video, stride=stride):
        row = rows.get(index)
        for n in range(crops.count) if row is not None else ():
            if crops.found[row, n]:
                box = crops.boxes[row, n]
                per[n].append((index, resize_frame(crop_frame(frame, box), size), box))
    usable = [n for n in range(crops.count) if len(per[n]) >= 2]
    if not usable:
        raise FommError(f"no subject of {video} was found in 2 or more frames: training needs at least 2")
    items = [item for n in usable for item in per[n]]
    subjects = np.concatenate([np.full(len(per[n]), n, dtype=np.int64) for n in usable])
    log.info("loaded %d training crops of %d subject(s) of %s (stride %d, %d px)", len(items), len(usable), video,
             stride, size)
    return TrainingFrames(np.stack([c for _, c, _ in items]), np.asarray([i for i, _, _ in items], dtype=np.int64),
                          np.stack([b for _, _, b in items]), fps, str(video), subjects=subjects)


def foreground_masks(data: TrainingFrames, scene: np.ndarray, min_contrast: float = 12.0,
                     sigmas: float = 6.0) -> np.ndarray:
    """uint8 ``(T, S, S)``: 1 where a training frame differs from the static ``scene`` (uint8
    ``(H, W, 3)``, the empty frame at video resolution) cut by the same box, grown by one pixel.

    A pixel is foreground when its mean absolute difference over the colour channels exceeds the
    frame's median difference plus ``sigmas`` robust standard deviations (MAD), and at least
    ``min_contrast`` grey levels: the subject where it differs from the empty scene, and the parts
    of a whole-frame subject that move.
    """
    size = data.frames.shape[1]
    masks = np.zeros(data.frames.shape[:3], dtype=np.uint8)
    scenes: dict[tuple[float, ...], np.ndarray] = {}
    for i, (frame, box) in enumerate(zip(data.frames, data.boxes)):
        key = tuple(np.round(box, 3))
        if key not in scenes:
            if len(scenes) > 256:  # boxes that follow a subject rarely repeat: keep memory bounded
                scenes.clear()
            scenes[key] = resize_frame(np.ascontiguousarray(crop_frame(scene, box)), size).astype(np.float32)
        difference = np.abs(frame.astype(np.float32) - scenes[key]).mean(axis=2)
        median = float(np.median(difference))
        spread = 1.4826 * float(np.median(np.abs(difference - median)))
        found = np.pad(difference > max(min_contrast, median + sigmas * spread), 1)
        grown = np.zeros((size, size), dtype=bool)
        for dy in range(3):
            for dx in range(3):
                grown |= found[dy : dy + size, dx : dx + size]
        masks[i] = grown
    return masks

def load_training_frames(video: str | os.PathLike, size: int, max_frames: int,
                         crops: SubjectCrops | SubjectsCrops | None = None) -> TrainingFrames:
    """Read up to ``max_frames`` evenly strided frames, crop each to its box (or the whole frame), resize to ``size``.

    ``crops`` gives per-frame crop boxes (:mod:`fomm_kp.localize.crop_rule`); frames without a box
    are skipped. None: whole frames. With several subjects (:class:`SubjectsCrops`) every subject's
    crops are used, up to ``max_frames`` frames of each.
    """
    info = probe(video)
    if info.num_frames < 2:
        raise FommError(f"{video} has {info.num_frames} frame(s): training needs at least 2")
    stride = max(1, int(np.ceil(info.num_frames / max_frames)))
    if isinstance(crops, SubjectsCrops):
        return _subjects_frames(video, size, stride, crops, info.fps)
    lookup = None
    if crops is not None:
        lookup = {int(f): np.asarray(b, dtype=np.float64) for f, b in zip(crops.frame_indices, crops.boxes)}
    whole = np.array([0, 0, info.width, info.height], dtype=np.float64)
    frames, indices, used = [], [], []
    if lookup is None:
        for index, frame in iter_frames(video, stride=stride, size=size):
            frames.append(frame)
            indices.append(index)
            used.append(whole)
    else:
        for index, frame in iter_frames(video, stride=stride):
            box = lookup.get(index)
            if box is None:
                continue
            frames.append(resize_frame(crop_frame(frame, box), size))
            indices.append(index)
            used.append(box)
    if len(frames) < 2:
        raise FommError(f"only {len(frames)} usable frame(s) in {video}: training needs at least 2")
    log.info("loaded %d training frames of %s (stride %d, %d px)", len(frames), video, stride, size)
    return TrainingFrames(np.stack(frames), np.asarray(indices, dtype=np.int64), np.stack(used), info.fps, str(video))


class Pair(NamedTuple):
    """A batch of pairs: ``source``, ``driving`` float ``(B, 3, S, S)`` in [0, 1]; ``masks`` float
    ``(2B, 1, S, S)`` (source masks, then driving masks; 1 = foreground) or None."""

    source: torch.Tensor
    driving: torch.Tensor
    masks: torch.Tensor | None = None


class FramePairs:
    """Draws batches of (source, driving) pairs ``(B, 3, S, S)`` float in [0, 1] with augmentation.

    The gap between the two frames is drawn from ``[min_gap, max_gap]`` original frames (converted
    to the stride of the stored frames, at least 1), both directions equally likely. Augmentation
    is the same for both frames of a pair: a mirror flip (left-right, or with ``flip_vertical``
    top-bottom: for crops turned so that the subject faces right, which must stay so), optionally a
    quarter-turn rotation (for top views, where a subject may face any way), and
    brightness/contrast jitter. Every sample draws from its own stream, keyed by ``seed``, the step
    and its place in the batch.
    """

    def __init__(
        self, data: TrainingFrames, min_gap: int, max_gap: int, flip: bool, color_jitter: float, seed: int = 0,
        rotate90: bool = False, flip_vertical: bool = False,
    ) -> None:
        self.frames = torch.from_numpy(data.frames)  # uint8 (T, S, S, 3)
        self.masks = None if data.masks is None else torch.from_numpy(data.masks)  # uint8 (T, S, S)
        count = len(self.frames)
        if count < 2:
            raise FommError(f"{count} training frame(s) of {data.video}: pairs need at least 2")
        self.subjects = data.subjects
        steps = np.diff(data.frame_indices)
        if self.subjects is not None:
            steps = steps[np.diff(self.subjects) == 0]  # within one subject's crops
        stride = max(1, int(np.median(steps))) if len(steps) else 1
        # Both gaps in stored frames, within [1, count - 1] so that every pair fits in the clip.
        self.max_gap = max(1, min(count - 1, int(round(max_gap / stride))))
        self.min_gap = min(max(1, int(round(min_gap / stride))), self.max_gap)
        self.flip = flip
        self.flip_dim = -2 if flip_vertical else -1
        self.rotate90 = rotate90
        self.color_jitter = color_jitter
        self.seed = seed

    def __len__(self) -> int:
        return len(self.frames)

    def to(self, device: torch.device) -> "FramePairs":
        """Keep the frames (and masks) on ``device`` (a GPU: batches are then cut there, with no copies from the host)."""
        self.frames = self.frames.to(device)
        self.masks = None if self.masks is None else self.masks.to(device)
        return self

    def sample_indices(self, streams: Sequence[np.random.Generator]) -> tuple[np.ndarray, np.ndarray]:
        """``(first, second)`` stored-frame indices ``(B,)``, one pair per stream, ``min_gap <= |second - first| <= max_gap``
        (both crops of one subject when there are several)."""
        count = len(self.frames)
        gaps = np.array([g.integers(self.min_gap, self.max_gap + 1) for g in streams])
        # The earlier frame is drawn among those that leave room for the gap (max_gap < count), so
        # every draw is valid; then the order is flipped half the time.
        earlier = np.array([g.integers(0, count - gap) for g, gap in zip(streams, gaps)])
        if self.subjects is not None:
            earlier = self._same_subject(earlier, gaps, streams)
        later = earlier + gaps
        swap = np.array([g.random() < 0.5 for g in streams])
        return np.where(swap, later, earlier), np.where(swap, earlier, later)

    def _same_subject(self, earlier: np.ndarray, gaps: np.ndarray, streams: Sequence[np.random.Generator]) -> np.ndarray:
        """Draws of ``earlier`` whose pair would join two subjects' crops redrawn until it does not
        (a subject too short for a gap pairs its first and last crops)."""
        last = np.r_[np.flatnonzero(np.diff(self.subjects)), len(self.subjects) - 1]  # last crop of each run
        end = last[np.searchsorted(last, np.arange(len(self.subjects)))]  # per crop: its run's last crop
        for _ in range(100):
            bad = end[earlier] < earlier + gaps
            if not bad.any():
                return earlier
            for i in np.flatnonzero(bad):  # each sample redraws from its own stream
                earlier[i] = streams[i].integers(0, len(self.subjects) - gaps[i])
        bad = end[earlier] < earlier + gaps
        start = np.r_[0, last[:-1] + 1][np.searchsorted(last, earlier[bad])]
        earlier[bad] = np.maximum(start, end[earlier[bad]] - gaps[bad])  # runs hold 2+ crops: a gap of 1+ fits
        gaps[bad] = end[earlier[bad]] - earlier[bad]
        return earlier

    def sample(self, batch_size: int, step: int = 0, first: int = 0) -> Pair:
        """Samples ``first .. first + batch_size - 1`` of the batch of ``step``, each drawn from its own
        stream (:mod:`fomm_kp.training.streams`): the same pair and augmentation whichever process
        draws it. On the frames' device; no host round trip."""
        return self.draw(data_streams(self.seed, step, range(first, first + batch_size)))

    def draw(self, streams: Sequence[np.random.Generator]) -> Pair:
        """One pair per stream (see :meth:`sample`)."""
        first_index, second_index = self.sample_indices(streams)
        device = self.frames.device

        def images(stored: torch.Tensor, indices: np.ndarray) -> torch.Tensor:
            picked = stored[torch.from_numpy(indices).to(device)]
            return picked.permute(0, 3, 1, 2).float() / 255 if picked.ndim == 4 else picked.unsqueeze(1).float()

        def per_sample(values: list) -> torch.Tensor:  # (B, 1, 1, 1) on the frames' device
            return torch.tensor(values, device=device).view(-1, 1, 1, 1)

        # Masks travel with their frames through the same flips and turns.
        batch = [images(self.frames, first_index), images(self.frames, second_index)]
        if self.masks is not None:
            batch += [images(self.masks, first_index), images(self.masks, second_index)]
        if self.flip:
            flips = per_sample([g.random() < 0.5 for g in streams])
            batch = [torch.where(flips, x.flip(self.flip_dim), x) for x in batch]
        if self.rotate90:
            turns = np.array([g.integers(0, 4) for g in streams])
            for k in np.unique(turns[turns > 0]):
                chosen = per_sample((turns == k).tolist())
                batch = [torch.where(chosen, x.rot90(int(k), dims=(-2, -1)), x) for x in batch]
        source, driving = batch[0], batch[1]
        masks = torch.cat(batch[2:]) if self.masks is not None else None
        if self.color_jitter > 0:
            j = self.color_jitter
            brightness = per_sample([g.uniform(-j, j) for g in streams]).float()
            contrast = per_sample([g.uniform(1 - j, 1 + j) for g in streams]).float()
            source = ((source - 0.5) * contrast + 0.5 + brightness).clamp(0, 1)
            driving = ((driving - 0.5) * contrast + 0.5 + brightness).clamp(0, 1)
        return Pair(source, driving, masks)
