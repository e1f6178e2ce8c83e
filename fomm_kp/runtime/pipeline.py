"""Frames through a detector at their boxes: the per-frame work that offline tracking and live streams share.

Each frame is cut at its box (None: the subject was not found there) and resized to the detector's
input (:func:`fomm_kp.video.crop_resized`); the detector runs once on the crops of the frames
where a subject was found, and their keypoints go back to frame pixels. Frames without a subject
get NaN keypoints, jacobians and covariances and score 0, and cost nothing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fomm_kp.runtime.detector import Detections, Detector
from fomm_kp.video import crop_resized

__all__ = ["detect_at_boxes", "missing_detections"]


def missing_detections(count: int, num_keypoints: int) -> Detections:
    """Detections of ``count`` frames without a subject: NaN keypoints, jacobians, covariances; score 0."""
    k = num_keypoints
    return Detections(np.full((count, k, 2), np.nan, np.float32), np.zeros((count, k), np.float32),
                      np.full((count, k, 2, 2), np.nan, np.float32), np.full((count, k, 2, 2), np.nan, np.float32))


def detect_at_boxes(model: Detector, frames: Sequence[np.ndarray], boxes: Sequence[np.ndarray | None]) -> Detections:
    """Keypoints of uint8 frames ``(H, W, 3)`` (or grey ``(H, W)``, :mod:`fomm_kp.grey`) cut at ``boxes`` (``(4,)`` or ``(5,)`` each, see
    :func:`fomm_kp.video.crop_frame`; None where no subject was found), in frame pixels: one
    :class:`Detections` row per frame."""
    found = [i for i, box in enumerate(boxes) if box is not None]
    out = missing_detections(len(frames), model.num_keypoints)
    if not found:
        return out
    size = model.detector_size
    crops = np.stack([crop_resized(frames[i], boxes[i], size) for i in found])
    columns = max(len(boxes[i]) for i in found)
    chosen = np.stack([np.pad(np.asarray(boxes[i], dtype=np.float64), (0, columns - len(boxes[i]))) for i in found])
    detections = model.detect_resized(crops, chosen)
    for name in ("keypoints", "scores", "jacobians", "covariances"):
        getattr(out, name)[found] = getattr(detections, name)
    return out
