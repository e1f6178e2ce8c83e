"""Tracks over time: centres and headings filled over misses and smoothed, robust to flips."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter, uniform_filter1d

from fomm_kp.errors import FommError

__all__ = ["interpolate", "smooth_centres", "smooth_headings", "heading_axes", "make_continuous", "heading_votes",
           "vote_tally", "reach"]


def interpolate(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation of a ``(T, D)`` array over rows where ``valid`` is False (ends held)."""
    out = values.astype(np.float64).copy()
    idx = np.arange(len(values))
    for d in range(values.shape[1]):
        out[:, d] = np.interp(idx, idx[valid], values[valid, d])
    return out


def reach(sigma: float) -> int:
    """How many frames either side of a row :func:`smooth_centres` reads: the running median's 2
    and the Gaussian's radius (scipy truncates it at 4 sigma)."""
    return 2 + (int(4.0 * float(sigma) + 0.5) if sigma > 0 else 0)


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
    Returns float64 ``(T,)``; zeros when nothing was found. The three steps are
    :func:`heading_axes`, :func:`make_continuous` and :func:`heading_votes` + :func:`vote_tally`.
    """
    headings = np.asarray(headings, dtype=np.float64)
    found = np.asarray(found, dtype=bool) & np.isfinite(headings)
    if not found.any():
        return np.zeros(len(headings))
    vectors = make_continuous(heading_axes(headings, found, sigma))
    tally = vote_tally(heading_votes(vectors, headings, found), vote_frames)
    vectors *= np.sign(tally)[:, None]
    return np.arctan2(vectors[:, 1], vectors[:, 0])


def heading_axes(headings: np.ndarray, found: np.ndarray, sigma: float) -> np.ndarray:
    """Unit vectors ``(T, 2)`` along the smoothed axis of the headings (modulo π, as doubled angles
    smoothed with :func:`smooth_centres`), pointing either way. ``found`` must be false where a
    heading is not finite."""
    doubled = np.stack([np.cos(2 * headings), np.sin(2 * headings)], axis=1)
    doubled[~found] = 0.0
    smoothed = smooth_centres(doubled, found, sigma)
    axis = np.arctan2(smoothed[:, 1], smoothed[:, 0]) / 2.0
    return np.stack([np.cos(axis), np.sin(axis)], axis=1)


def make_continuous(vectors: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Flip vectors ``(T, 2)`` in place so that none turns by more than a right angle from the one
    before (``previous``: the vector before the first; None: the first is kept). Returns them."""
    last = previous
    for i in range(len(vectors)):  # continuous in time: no half-turn between neighbours
        if last is not None and vectors[i] @ last < 0:
            vectors[i] = -vectors[i]
        last = vectors[i]
    return vectors


def heading_votes(vectors: np.ndarray, headings: np.ndarray, found: np.ndarray) -> np.ndarray:
    """+1 where a frame's own heading agrees with its axis vector, -1 where it disagrees, 0 unknown."""
    raw = np.stack([np.cos(headings), np.sin(headings)], axis=1)
    return np.where(found, np.sign(np.sum(np.nan_to_num(raw) * vectors, axis=1)), 0.0)


def vote_tally(votes: np.ndarray, vote_frames: int, total: int | None = None) -> np.ndarray:
    """The sign-deciding tally: mean vote over ``vote_frames`` frames either side (a tie counts as
    +1). ``total``: the length of the whole track when ``votes`` is a prefix of it (the window is
    narrowed for tracks shorter than it, as the whole track's length decides)."""
    total = len(votes) if total is None else total
    window = 2 * int(vote_frames) + 1
    tally = uniform_filter1d(votes, size=min(window, 2 * total - 1), mode="nearest")
    return np.where(tally == 0, 1.0, tally)  # a tie keeps the axis as it is
