"""Where keypoints sit: the share that lands on the subject, a diagnostic a user can read.

The subject is the foreground of each frame against the static scene (the median background of
:mod:`fomm_kp.localize.background`, the same test that finds a localised subject), grown by a small
tolerance. For whole-frame subjects (a face filling the frame) the foreground is what differs from
the clip's median: the parts that move. A keypoint floating in the empty arena beside an animal,
or on a still head far from the reaching paw, counts as off the subject.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
from scipy.ndimage import binary_dilation

from fomm_kp.config import LocalizeConfig
from fomm_kp.localize.background import Background, estimate_background, reduce_frame, work_factor
from fomm_kp.localize.blobs import foreground_mask
from fomm_kp.tracks import Tracks
from fomm_kp.video import iter_frames

__all__ = ["OnSubject", "OnSubjectSampler", "judge", "on_subject", "on_subject_share"]


class OnSubject(NamedTuple):
    """``share``: keypoints on the subject / keypoints found, over the sampled frames that have a
    foreground; ``median_count``: keypoints on the subject in the median such frame (of
    ``num_keypoints``); ``frames``: how many frames were judged."""

    share: float
    median_count: float
    num_keypoints: int
    frames: int

    def to_data(self) -> dict:
        """Plain data for :attr:`fomm_kp.tracks.Tracks.metadata`."""
        return {"share": None if np.isnan(self.share) else round(self.share, 4),
                "median_count": None if np.isnan(self.median_count) else self.median_count,
                "num_keypoints": self.num_keypoints, "frames": self.frames}

    @classmethod
    def from_data(cls, data: dict) -> "OnSubject":
        def number(value) -> float:
            return float("nan") if value is None else float(value)

        return cls(number(data.get("share")), number(data.get("median_count")), int(data.get("num_keypoints", 0)),
                   int(data.get("frames", 0)))

    def describe(self) -> str:
        if self.frames == 0:
            return "on the subject: not judged (no foreground found in the sampled frames)"
        return (f"on the subject: {100 * self.share:.0f}% of keypoints ({self.median_count:.0f} of "
                f"{self.num_keypoints} in the median frame, {self.frames} frames sampled)")


def on_subject_share(points: np.ndarray, masks: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """For keypoints ``(F, K, 2)`` in frame pixels and foreground masks ``(F, h, w)`` at ``1/scale``
    of the frame: per frame, the keypoints on the mask and those found (finite) ``(F,)`` each."""
    points = np.asarray(points, dtype=np.float64)
    found = np.isfinite(points).all(axis=-1)
    cells = np.floor(np.where(found[..., None], points, 0.0) / scale).astype(np.int64)
    h, w = masks.shape[1:]
    inside = found & (cells[..., 0] >= 0) & (cells[..., 0] < w) & (cells[..., 1] >= 0) & (cells[..., 1] < h)
    rows = np.arange(len(points))[:, None].repeat(points.shape[1], axis=1)
    on = np.zeros(found.shape, dtype=bool)
    on[inside] = masks[rows[inside], cells[..., 1][inside], cells[..., 0][inside]]
    return on.sum(axis=1), found.sum(axis=1)


class OnSubjectSampler:
    """Judges where keypoints sit while a video is tracked, from frames the tracker decodes anyway:
    up to ``samples`` frames spread over ``total`` are kept at work resolution; at the end their
    median is the static scene and each kept frame's foreground (grown by ``tolerance`` of the
    frame's longer side) is tested under its keypoints."""

    def __init__(self, total: int, width: int, height: int, config: LocalizeConfig = LocalizeConfig(),
                 samples: int = 200, tolerance: float = 0.02) -> None:
        self.config = config
        self.factor = work_factor(width, height, config)
        self.every = max(1, total // max(samples, 1))
        self.tolerance = tolerance
        self.size = (width, height)
        self.seen = 0
        self.frames: list[np.ndarray] = []
        self.points: list[np.ndarray] = []

    def add(self, frame: np.ndarray, points: np.ndarray) -> None:
        """One tracked frame (uint8 ``(H, W, 3)``) and its keypoints ``(K, 2)`` in frame pixels."""
        if self.seen % self.every == 0:
            self.frames.append(reduce_frame(frame, self.factor).astype(np.uint8))
            self.points.append(np.asarray(points, dtype=np.float64))
        self.seen += 1

    def result(self) -> OnSubject:
        num_keypoints = self.points[0].shape[0] if self.points else 0
        if len(self.frames) < 3:
            return OnSubject(float("nan"), float("nan"), num_keypoints, 0)
        stack = np.stack(self.frames).astype(np.float32)
        background = Background(np.median(stack, axis=0), self.factor, *self.size)
        grow = max(1, int(round(self.tolerance * max(stack.shape[1:3]))))
        masks = np.stack([binary_dilation(foreground_mask(f, background, self.config), iterations=grow) for f in stack])
        return judge(np.stack(self.points), masks, float(self.factor))


def judge(points: np.ndarray, masks: np.ndarray, scale: float) -> OnSubject:
    """:class:`OnSubject` of keypoints ``(F, K, 2)`` over foreground masks ``(F, h, w)`` at ``1/scale``."""
    on, found = on_subject_share(points, masks, scale)
    judged = masks.reshape(len(masks), -1).any(axis=1) & (found > 0)
    if not judged.any():
        return OnSubject(float("nan"), float("nan"), points.shape[1], 0)
    return OnSubject(float(on[judged].sum() / found[judged].sum()), float(np.median(on[judged])),
                     points.shape[1], int(judged.sum()))


def on_subject(tracks: Tracks, video: str | os.PathLike, config: LocalizeConfig = LocalizeConfig(),
               samples: int = 200, tolerance: float = 0.02, background: Background | None = None) -> OnSubject:
    """How many of the first subject's keypoints in ``tracks`` sit on the subject of ``video``, on up
    to ``samples`` rows spread over the tracks. ``tolerance``: the foreground is grown by this
    fraction of the frame's longer side (a keypoint on the subject's edge counts)."""
    background = background or estimate_background(video, config)
    rows = np.unique(np.linspace(0, tracks.num_frames - 1, min(samples, tracks.num_frames)).round().astype(int))
    wanted = {int(tracks.frame_indices[r]): r for r in rows}
    grow = max(1, int(round(tolerance * max(background.image.shape[:2]))))
    masks, points = [], []
    for index, frame in iter_frames(video, stop=max(wanted) + 1):
        if index in wanted:
            mask = foreground_mask(reduce_frame(frame, background.factor), background, config)
            masks.append(binary_dilation(mask, iterations=grow))
            points.append(tracks.keypoints[wanted[index], 0])
    if not masks:
        return OnSubject(float("nan"), float("nan"), tracks.num_keypoints, 0)
    return judge(np.stack(points), np.stack(masks), float(background.factor))
