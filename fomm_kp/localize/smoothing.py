"""Tracks over time: centres and headings filled over misses and smoothed, robust to flips."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter, uniform_filter1d

from fomm_kp.errors import FommError

__all__ = ["interpolate", "smooth_centres", "smooth_headings"]


def interpolate(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation of a ``(T, D)`` array over rows where ``valid`` is False (ends held)."""
    out = values.astype(np.float64).copy()
    idx = np.arange(len(values))
    for d in range(values.shape[1]):
        out[:, d] = np.interp(idx, idx[valid], values[valid, d])
    return out


def smooth_centres(centres: np.ndarray, found: np.ndarray, sigma: float) -> np.ndarray:
    """Fill and smooth a ``(T, 2)`` centre track.

    Rows where ``found`` is False are linearly interpolated (held at the ends); isolated jumps are
    removed with a 5-frame running median, then a Gaussian of ``sigma`` frames smooths the track
    (both on a track extended by odd reflection, so steady motion is not biased at the ends).
    Returns float64 ``(T, 2)``; all NaN when nothing was found.
    """
    centres = np.asarray(centres, dtype=np.float64)
    found = np.asarray(found, dtype=bool)
    if centres.ndim != 2 or centres.shape[1] != 2 or found.shape != (len(centres),):
        raise FommError(f"smooth_centres: centres must be (T, 2) and found (T,), got {centres.shape}, {found.shape}")
    if not found.any():
        return np.full_like(centres, np.nan)
    track = interpolate(centres, found)
    if len(track) < 3:
        return track
    # Odd reflection at both ends (2·end − mirrored samples) keeps a steady motion unbiased there.
    pad = min(len(track) - 1, max(2, int(np.ceil(4 * sigma))))
    padded = np.concatenate([2 * track[:1] - track[pad:0:-1], track, 2 * track[-1:] - track[-2 : -pad - 2 : -1]])
    if len(track) >= 5:
        padded = median_filter(padded, size=(5, 1), mode="nearest")
    if sigma > 0:
        padded = gaussian_filter1d(padded, sigma=sigma, axis=0, mode="nearest")
    return padded[pad : pad + len(track)]


def smooth_headings(headings: np.ndarray, found: np.ndarray, sigma: float, vote_frames: int = 25) -> np.ndarray:
    """Smooth a heading track ``(T,)`` (radians), robust to head/tail flips.

    The axis (heading modulo π, as a doubled angle) is filled and smoothed like the centres
    (:func:`smooth_centres`) and made continuous in time; its direction then follows the majority
    of the per-frame headings within ``vote_frames`` frames either side, so a subject that turns
    round keeps its head forward and isolated flips of the shape cue do not turn the crop.
    Returns float64 ``(T,)``; zeros when nothing was found.
    """
    headings = np.asarray(headings, dtype=np.float64)
    found = np.asarray(found, dtype=bool) & np.isfinite(headings)
    if not found.any():
        return np.zeros(len(headings))
    doubled = np.stack([np.cos(2 * headings), np.sin(2 * headings)], axis=1)
    doubled[~found] = 0.0
    smoothed = smooth_centres(doubled, found, sigma)
    axis = np.arctan2(smoothed[:, 1], smoothed[:, 0]) / 2.0
    vectors = np.stack([np.cos(axis), np.sin(axis)], axis=1)
    for i in range(1, len(vectors)):  # continuous in time: no half-turn between neighbours
        if vectors[i] @ vectors[i - 1] < 0:
            vectors[i] = -vectors[i]
    raw = np.stack([np.cos(headings), np.sin(headings)], axis=1)
    votes = np.where(found, np.sign(np.sum(np.nan_to_num(raw) * vectors, axis=1)), 0.0)
    window = 2 * int(vote_frames) + 1
    tally = uniform_filter1d(votes, size=min(window, 2 * len(votes) - 1), mode="nearest")
    tally = np.where(tally == 0, 1.0, tally)  # a tie keeps the axis as it is
    vectors *= np.sign(tally)[:, None]
    return np.arctan2(vectors[:, 1], vectors[:, 0])
