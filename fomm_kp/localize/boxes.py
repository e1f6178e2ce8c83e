"""Square crop boxes that follow the subject through a video, one side per video.

Per-frame detections (:mod:`fomm_kp.localize.blobs`) become boxes: centres interpolated over misses
and smoothed over time (:mod:`fomm_kp.localize.smoothing`), one side from the subject's size
(``margin`` × a quantile of its length), and the heading of each frame for crops turned to it.
Boxes are ``(x0, y0, x1, y1)`` with integer values, ``x1 - x0 == y1 - y0 == side``; the crop is
``frame[y0:y1, x0:x1]`` (see :func:`fomm_kp.video.crop_frame`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from fomm_kp.config import LocalizeConfig
from fomm_kp.errors import FommError
from fomm_kp.localize.background import Background, estimate_background
from fomm_kp.localize.blobs import Blob, find_subject
from fomm_kp.localize.smoothing import interpolate, smooth_centres, smooth_headings
from fomm_kp.progress import Progress, report
from fomm_kp.video import iter_frames, probe

__all__ = ["SubjectBoxes", "box_side", "square_boxes", "boxes_from_blobs", "boxes_for_frames", "boxes_for_video"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SubjectBoxes:
    """Per-frame square crop boxes that follow the subject.

    Attributes:
        boxes: float32 ``(T, 4)`` ``x0, y0, x1, y1`` in frame pixels, integer-valued, side ``side``.
        centres: float32 ``(T, 2)`` smoothed subject centre (interpolated where not found).
        found: bool ``(T,)`` whether the subject was detected in that frame.
        frame_indices: int64 ``(T,)`` frame index of each row.
        side: box side in pixels (one per video).
        frame_width, frame_height: original frame size.
        angles: float32 ``(T,)`` the subject's heading (:attr:`Blob.heading`) in radians, smoothed
            like the centres and interpolated where not found (0 where never found).
        elongation: median :attr:`Blob.elongation` where found (1 when never found).
    """

    boxes: np.ndarray
    centres: np.ndarray
    found: np.ndarray
    frame_indices: np.ndarray
    side: int
    frame_width: int
    frame_height: int
    angles: np.ndarray | None = None
    elongation: float = 1.0

    def __post_init__(self) -> None:
        t = len(self.frame_indices)
        if self.boxes.shape != (t, 4) or self.centres.shape != (t, 2) or self.found.shape != (t,):
            raise FommError(
                f"SubjectBoxes: boxes {self.boxes.shape}, centres {self.centres.shape}, found "
                f"{self.found.shape} disagree with {t} frame indices"
            )
        if self.angles is not None and self.angles.shape != (t,):
            raise FommError(f"SubjectBoxes: angles {self.angles.shape} disagree with {t} frame indices")

    def crop_boxes(self, align: bool = False) -> np.ndarray:
        """Boxes to crop with: ``(T, 4)``, or with ``align`` ``(T, 5)`` whose last column turns each
        crop so that the subject's heading points along the crop's +x axis (see
        :func:`fomm_kp.video.crop_frame`)."""
        if not align:
            return self.boxes
        angles = np.zeros(len(self), np.float32) if self.angles is None else self.angles
        return np.concatenate([self.boxes, angles[:, None].astype(np.float32)], axis=1)

    def __len__(self) -> int:
        return len(self.frame_indices)


def box_side(lengths: np.ndarray, width: int, height: int, config: LocalizeConfig) -> int:
    if len(lengths) == 0:
        side = min(width, height)
    else:
        side = config.margin * float(np.quantile(lengths, config.size_quantile))
    side = int(np.ceil(max(side, config.min_side) / 2.0) * 2)  # even, for video writers
    return min(side, max(width, height))


def square_boxes(centres: np.ndarray, side: int, width: int, height: int) -> np.ndarray:
    """Integer square boxes of ``side`` centred on ``centres`` (T, 2), shifted to lie inside the
    frame where the frame is large enough."""
    x0 = np.round(centres[:, 0] + 0.5 - side / 2.0)
    y0 = np.round(centres[:, 1] + 0.5 - side / 2.0)
    if side <= width:
        x0 = np.clip(x0, 0, width - side)
    else:
        x0 = np.full_like(x0, np.floor((width - side) / 2.0))
    if side <= height:
        y0 = np.clip(y0, 0, height - side)
    else:
        y0 = np.full_like(y0, np.floor((height - side) / 2.0))
    return np.stack([x0, y0, x0 + side, y0 + side], axis=1).astype(np.float32)


def boxes_from_blobs(
    blobs: Sequence[Blob | None],
    frame_indices: np.ndarray,
    width: int,
    height: int,
    config: LocalizeConfig = LocalizeConfig(),
    side: int | None = None,
    smooth: bool = True,
) -> SubjectBoxes:
    """Turn per-frame detections into boxes: one side per sequence (``side`` or from the subject's
    size), centres interpolated over misses and smoothed over time when ``smooth``.

    When the subject is never found every box is centred in the frame and ``found`` is all False.
    """
    t = len(blobs)
    frame_indices = np.asarray(frame_indices, dtype=np.int64)
    if frame_indices.shape != (t,):
        raise FommError(f"boxes_from_blobs: {t} detections but frame_indices of shape {frame_indices.shape}")
    found = np.array([b is not None for b in blobs], dtype=bool)
    raw = np.full((t, 2), np.nan)
    for i, b in enumerate(blobs):
        if b is not None:
            raw[i] = b.centre
    if side is None:
        side = box_side(np.array([b.major_length for b in blobs if b is not None]), width, height, config)
    headings = np.array([np.nan if b is None else b.heading for b in blobs], dtype=np.float64)
    has_heading = np.isfinite(headings)
    if not found.any():
        log.warning("subject not found in any of %d frames: boxes centred in the frame", t)
        centres = np.tile([(width - 1) / 2.0, (height - 1) / 2.0], (t, 1))
    elif smooth:
        centres = smooth_centres(raw, found, config.smooth_sigma)
    else:
        centres = interpolate(raw, found)
    if not has_heading.any():
        angles = np.zeros(t)
    elif smooth:
        angles = smooth_headings(headings, has_heading, config.smooth_sigma)
    else:
        vectors = interpolate(np.stack([np.cos(headings), np.sin(headings)], axis=1), has_heading)
        angles = np.arctan2(vectors[:, 1], vectors[:, 0])
    elongations = [b.elongation for b in blobs if b is not None]
    return SubjectBoxes(
        boxes=square_boxes(centres, int(side), width, height),
        centres=centres.astype(np.float32),
        found=found,
        frame_indices=frame_indices,
        side=int(side),
        frame_width=width,
        frame_height=height,
        angles=angles.astype(np.float32),
        elongation=float(np.median(elongations)) if elongations else 1.0,
    )


def boxes_for_frames(
    frames: Iterable[np.ndarray],
    background: Background,
    config: LocalizeConfig = LocalizeConfig(),
    side: int | None = None,
    frame_indices: np.ndarray | None = None,
) -> SubjectBoxes:
    """Boxes for independent images (e.g. labelled frames picked from a video): each frame is
    searched on its own and nothing is smoothed. ``side`` fixes the box side (use the one the model
    was trained with); otherwise it comes from the subjects' sizes."""
    blobs = [find_subject(np.asarray(f), background, config) for f in frames]
    indices = np.arange(len(blobs)) if frame_indices is None else np.asarray(frame_indices)
    return boxes_from_blobs(blobs, indices, background.frame_width, background.frame_height, config, side, smooth=False)


def boxes_for_video(
    path: str | os.PathLike,
    config: LocalizeConfig = LocalizeConfig(),
    background: Background | None = None,
    side: int | None = None,
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
    progress: Progress | None = None,
) -> SubjectBoxes:
    """Follow the subject through a video (or image folder) and box it in every read frame.

    Streams the frames once (plus one sampled pass for the background when ``background`` is None);
    memory is constant apart from a few numbers per frame. ``progress`` hears every 50 frames.
    """
    path = Path(path)
    info = probe(path)
    if background is None:
        background = estimate_background(path, config)
    if background.frame_width != info.width or background.frame_height != info.height:
        raise FommError(
            f"background size {background.frame_width}x{background.frame_height} differs from the video's "
            f"{info.width}x{info.height} ({path})"
        )
    total = len(range(start, info.num_frames if stop is None else min(stop, info.num_frames), stride))
    blobs: list[Blob | None] = []
    indices: list[int] = []
    previous: np.ndarray | None = None
    scale = float(side) if side is not None else None
    for index, frame in iter_frames(path, start=start, stop=stop, stride=stride):
        blob = find_subject(frame, background, config, previous=previous, scale=scale)
        if blob is not None:
            previous = blob.centre
            if side is None:  # a running scale for the nearest-candidate preference
                length = config.margin * blob.major_length
                scale = length if scale is None else 0.9 * scale + 0.1 * length
        blobs.append(blob)
        indices.append(index)
        if len(indices) % 50 == 0 or len(indices) == total:
            report(progress, len(indices), total, "localising")
    if not blobs:
        raise FommError(f"no frames read from {path} (start={start}, stop={stop}, stride={stride})")
    boxes = boxes_from_blobs(blobs, np.asarray(indices), info.width, info.height, config, side)
    log.info(
        "localised the subject in %d of %d frames of %s; box side %d px",
        int(boxes.found.sum()), len(boxes), path, boxes.side,
    )
    return boxes


