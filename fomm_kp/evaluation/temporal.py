"""Jitter of keypoint tracks: frame-to-frame displacement where the subject hardly moves, raw and smoothed.

A keypoint that follows a part perfectly moves only as much as the part. Where the part hardly
moves, what the keypoint still moves from one frame to the next is jitter. "Hardly moves" is taken
from labels over time where there are some (the pairs of consecutive frames whose labels move
least: :func:`still_from_labels`), else from the video (the pairs whose grey levels change least:
:func:`still_from_frames`, which on a small subject in a large frame also picks pairs where the
subject still moves a little). :func:`jitter` gives the median displacement on those pairs, for the
tracks given (raw, or smoothed with :mod:`fomm_kp.tracks.smoothing`).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from fomm_kp.errors import FommError

__all__ = ["displacement", "still_from_labels", "still_from_frames", "jitter", "STILL_QUANTILE"]

STILL_QUANTILE = 0.2  # the stillest fifth of the consecutive-frame pairs


def displacement(points: np.ndarray) -> np.ndarray:
    """Frame-to-frame displacement ``(T-1, K)`` of points ``(T, K, 2)`` (NaN where either is missing)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[-1] != 2:
        raise FommError(f"points must be (T, K, 2), got {points.shape}")
    return np.linalg.norm(np.diff(points, axis=0), axis=-1)


def _stillest(change: np.ndarray, quantile: float) -> np.ndarray:
    usable = np.isfinite(change)
    if not usable.any():
        raise FommError("no pair of consecutive frames to judge stillness on")
    return usable & (change <= np.nanquantile(change, quantile))


def still_from_labels(labels: np.ndarray, quantile: float = STILL_QUANTILE) -> np.ndarray:
    """Pairs ``(T-1,)`` bool whose largest label displacement (over the parts) is in the lowest
    ``quantile``; labels ``(T, P, 2)``, NaN where a part is unlabelled (a pair with a part
    unlabelled in either frame is never still)."""
    return _stillest(displacement(labels).max(axis=1), quantile)


def still_from_frames(video: str | os.PathLike, stop: int, quantile: float = STILL_QUANTILE) -> np.ndarray:
    """Pairs ``(stop-1,)`` bool of the first ``stop`` frames whose mean grey difference (at 64 px) is
    in the lowest ``quantile``."""
    from fomm_kp.video import iter_frames

    small = np.stack([frame.mean(axis=2) for _, frame in iter_frames(video, stop=stop, size=64)])
    return _stillest(np.abs(np.diff(small, axis=0)).mean(axis=(1, 2)), quantile)


def jitter(points: Sequence[np.ndarray], still: Sequence[np.ndarray]) -> float:
    """Median displacement of every keypoint over the still pairs of one or more tracks (points
    ``(T, K, 2)`` and still pairs ``(T-1,)`` bool each)."""
    if len(points) != len(still) or not points:
        raise FommError("jitter needs the points and the still pairs of one or more tracks")
    return float(np.nanmedian(np.concatenate([displacement(p)[s].ravel() for p, s in zip(points, still)])))
