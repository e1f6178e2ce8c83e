"""Training on several clips: which clips a path names, and pairs drawn within one clip at a time.

    fomm-kp train a.mp4 b.mp4 c.mp4          # or: fomm-kp train folder_of_videos/

Each clip keeps its own frames and its own :class:`~fomm_kp.training.dataset.FramePairs` (gaps,
augmentation); :class:`ClipPairs` picks, for each element of a batch, a clip with probability
proportional to its length in frames and then a (source, driving) pair inside that clip, so a pair
never joins two clips (two subjects, two cameras). With one clip, training uses that clip's
``FramePairs`` directly: the single-clip path is unchanged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fomm_kp.errors import FommError
from fomm_kp.training.dataset import FramePairs, Pair
from fomm_kp.training.streams import data_streams
from fomm_kp.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = ["training_clips", "ClipPairs"]

log = logging.getLogger(__name__)


def training_clips(videos: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The clips named by ``videos``: one path or several; a folder holding video files stands for
    those videos (sorted by name), a folder of images for one clip (its frames)."""
    paths = [Path(videos)] if isinstance(videos, (str, os.PathLike)) else [Path(v) for v in videos]
    if not paths:
        raise FommError("no videos to train on")
    clips: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            has_images = any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())
            if inside and has_images:
                raise FommError(f"{path} holds both videos and images: name the videos, or use a folder of one kind")
            clips += inside or [path]
        else:
            clips.append(path)
    resolved = [p.resolve() for p in clips]
    if len(set(resolved)) != len(resolved):
        raise FommError("the same video is named twice")
    return clips


class ClipPairs:
    """Batches of (source, driving) pairs from several clips, each pair within one clip.

    Each sample of a batch picks its clip from its own random stream (seeded like
    :meth:`FramePairs.sample`'s: by ``seed``, the step and its place in the batch), clip ``i`` with
    probability ``lengths[i] / sum(lengths)`` (lengths in original frames), then draws its pair and
    augmentation inside that clip from the same stream: the batch is the same whichever process
    draws which part of it.
    """

    def __init__(self, clips: Sequence[FramePairs], lengths: Sequence[float], seed: int = 0) -> None:
        if len(clips) < 1 or len(clips) != len(lengths):
            raise FommError(f"{len(clips)} clip sampler(s) for {len(lengths)} length(s)")
        weights = np.asarray(lengths, dtype=np.float64)
        if not np.isfinite(weights).all() or (weights <= 0).any():
            raise FommError(f"clip lengths must be positive, got {list(lengths)}")
        self.clips = list(clips)
        self.weights = weights / weights.sum()
        self.seed = seed

    @property
    def frames(self) -> torch.Tensor:
        """The first clip's frames (training previews animate them)."""
        return self.clips[0].frames

    def __len__(self) -> int:
        return sum(len(clip) for clip in self.clips)

    def to(self, device: torch.device) -> "ClipPairs":
        for clip in self.clips:
            clip.to(device)
        return self

    def choose_clips(self, streams: Sequence[np.random.Generator]) -> np.ndarray:
        """The clip of each sample ``(B,)``, drawn from its stream with the clips' length weights."""
        return np.array([g.choice(len(self.clips), p=self.weights) for g in streams], dtype=np.int64)

    def sample_indices(self, streams: Sequence[np.random.Generator]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(clip, first, second)`` ``(B,)`` each: both frames of a pair are stored frames of ``clip``."""
        chosen = self.choose_clips(streams)
        first = np.zeros(len(streams), dtype=np.int64)
        second = np.zeros(len(streams), dtype=np.int64)
        for index in np.unique(chosen):
            where = np.flatnonzero(chosen == index)
            first[where], second[where] = self.clips[index].sample_indices([streams[i] for i in where])
        return chosen, first, second

    def sample(self, batch_size: int, step: int = 0, first: int = 0) -> Pair:
        """Samples ``first .. first + batch_size - 1`` of the batch of ``step``: a
        :class:`~fomm_kp.training.dataset.Pair` batch, each pair (and its masks) within one clip."""
        streams = data_streams(self.seed, step, range(first, first + batch_size))
        chosen = self.choose_clips(streams)
        parts: list[Pair] = []
        order: list[np.ndarray] = []
        for index in np.unique(chosen):
            where = np.flatnonzero(chosen == index)
            parts.append(self.clips[index].draw([streams[i] for i in where]))
            order.append(where)
        positions = torch.from_numpy(np.argsort(np.concatenate(order), kind="stable")).to(self.frames.device)

        def joined(tensors: list[torch.Tensor]) -> torch.Tensor:
            return torch.cat(tensors)[positions]

        masks = None
        if all(part.masks is not None for part in parts):  # each part's masks: its sources', then its drivings'
            halves = [part.masks.chunk(2) for part in parts]
            masks = torch.cat([joined([h[0] for h in halves]), joined([h[1] for h in halves])])
        return Pair(joined([p.source for p in parts]), joined([p.driving for p in parts]), masks)
