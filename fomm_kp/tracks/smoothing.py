"""Confidence-weighted temporal smoothing of keypoint tracks.

Each coordinate at frame t is replaced by the value at t of a polynomial (degree ``order``) fitted
by weighted least squares to the frames within ``± window // 2``: a frame's weight is its keypoint
confidence times a tricube kernel of its distance from t. A keypoint the detector was unsure of
barely pulls the fit, a missing one (NaN) not at all, and a missing keypoint stays missing (the
smoother never invents a point). With equal confidences this is a Savitzky–Golay filter with a
tricube window (LOESS): it keeps the timing and peaks of fast movements far better than a moving
average of the same width.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.settings import FRACTION, check, integer, refuse
from fomm_kp.tracks.core import Tracks

__all__ = ["Smoothing", "smooth_keypoints", "smooth_tracks"]


@dataclass(frozen=True)
class Smoothing:
    """``window``: frames in each fit (odd, ≥ 3); ``order``: polynomial degree (0–3, below the
    window); ``min_score``: confidences below it count as missing."""

    window: int = 7
    order: int = 2
    min_score: float = 0.0

    def __post_init__(self) -> None:
        check(self, window=integer(3, 1001), order=integer(0, 3), min_score=FRACTION)
        if self.window % 2 == 0:
            refuse(self, "window", "an odd number of frames")
        if self.order >= self.window:
            refuse(self, "order", f"below the window ({self.window})")

    def describe(self) -> dict:
        """Plain data for :attr:`Tracks.metadata`."""
        return {"method": "confidence-weighted local polynomial (tricube window)", **dataclasses.asdict(self)}


def _correlate(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``out[t] = Σ_d kernel[d] · values[t + d]`` along axis 0 (zero outside), d = −h … h."""
    half = len(kernel) // 2
    pad = np.zeros((half,) + values.shape[1:])
    padded = np.concatenate([pad, values, pad])
    out = np.zeros(values.shape, dtype=np.float64)
    for i, weight in enumerate(kernel):
        out += weight * padded[i : i + len(values)]
    return out


def smooth_keypoints(keypoints: np.ndarray, scores: np.ndarray, smoothing: Smoothing = Smoothing()) -> np.ndarray:
    """Smooth ``keypoints`` float ``(T, ..., 2)`` over time (axis 0) with confidences ``scores``
    ``(T, ...)``. Returns float32 of the same shape; NaN where the input was NaN."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if keypoints.shape[:-1] != scores.shape or keypoints.shape[-1] != 2:
        raise FommError(f"keypoints (T, ..., 2) and scores (T, ...) disagree: {keypoints.shape}, {scores.shape}")
    half = smoothing.window // 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    tricube = (1.0 - np.abs(offsets / (half + 1)) ** 3) ** 3
    present = np.isfinite(keypoints).all(axis=-1)
    usable = present & (scores >= smoothing.min_score)
    weights = np.where(usable, np.clip(scores, 1e-3, None), 0.0)
    values = np.where(usable[..., None], keypoints, 0.0)
    degree = smoothing.order
    # Weighted moments S_j = Σ w u^j (j ≤ 2·degree) and T_j = Σ w u^j x (j ≤ degree), u = offset.
    moments = np.stack([_correlate(weights, offsets**j * tricube) for j in range(2 * degree + 1)], axis=-1)
    targets = np.stack([_correlate(weights[..., None] * values, offsets**j * tricube) for j in range(degree + 1)],
                       axis=-1)  # (..., 2, degree + 1)
    # Near the ends and gaps a window may hold too few usable frames for the full degree: each point
    # takes the highest degree d whose fit has at least d + 1 frames (degree 0 = the weighted mean).
    count = _correlate(usable.astype(np.float64), np.ones_like(offsets))
    smoothed = np.zeros(keypoints.shape)
    for d in range(degree + 1):
        normal = np.stack([moments[..., i : i + d + 1] for i in range(d + 1)], axis=-2) + 1e-9 * np.eye(d + 1)
        # The fit's value at u = 0 is e0ᵀ N⁻¹ T; N is symmetric, so e0ᵀ N⁻¹ = (N⁻¹ e0)ᵀ.
        unit = np.broadcast_to(np.eye(d + 1)[:, :1], normal.shape[:-1] + (1,))
        first_row = np.linalg.solve(normal, unit)[..., 0]
        fitted = np.einsum("...j,...cj->...c", first_row, targets[..., : d + 1])
        smoothed = np.where((count > d)[..., None], fitted, smoothed)
    keep = present & (moments[..., 0] > 1e-9)
    return np.where(keep[..., None], smoothed, np.nan).astype(np.float32)


def smooth_tracks(tracks: Tracks, smoothing: Smoothing = Smoothing()) -> Tracks:
    """The same tracks with keypoints smoothed over time per subject and keypoint (local affines,
    covariances and scores as detected); the smoothing is recorded in ``metadata["smoothing"]``.

    Rows are taken as consecutive samples: track with a constant stride.
    """
    smoothed = smooth_keypoints(tracks.keypoints, tracks.scores, smoothing)
    return dataclasses.replace(tracks, keypoints=smoothed,
                               metadata={**tracks.metadata, "smoothing": smoothing.describe()})
