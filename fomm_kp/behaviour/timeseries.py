"""Per-frame series of tracks on a regular frame grid: placement, gap filling, Savitzky–Golay
derivatives over runs of valid samples, and angles (headings, rotations, unwrapping)."""

from __future__ import annotations

import logging

import numpy as np
from scipy.signal import savgol_filter

from fomm_kp.errors import FommError
from fomm_kp.tracks import Tracks

__all__ = ["regular_grid", "on_grid", "interpolate_gaps", "valid_runs", "derivatives", "grouped_derivatives",
           "principal_heading", "rotate", "unwrap_runs"]

log = logging.getLogger(__name__)


def regular_grid(tracks: Tracks) -> tuple[np.ndarray, int, np.ndarray]:
    """Rows of ``tracks`` placed on a regular frame grid: ``(grid_frames, step, row_of_grid)``.

    ``row_of_grid[g]`` is the tracks row at grid position g, or -1 where that frame is absent.
    """
    frames = tracks.frame_indices
    if frames.size == 0:
        raise FommError("tracks hold no frames")
    if np.any(np.diff(frames) <= 0):
        raise FommError("tracks frame_indices must be strictly increasing")
    diffs = np.diff(frames)
    step = int(np.gcd.reduce(diffs)) if diffs.size else 1
    grid = np.arange(frames[0], frames[-1] + 1, step, dtype=np.int64)
    row = np.full(grid.shape, -1, dtype=np.int64)
    row[(frames - frames[0]) // step] = np.arange(len(frames))
    if step > 1:
        log.info("tracks sample every %d frames; features use %.3f rows/s", step, tracks.fps / step)
    return grid, step, row


def on_grid(array: np.ndarray, row: np.ndarray, fill: float) -> np.ndarray:
    out = np.full((len(row),) + array.shape[1:], fill, dtype=np.float64)
    present = row >= 0
    out[present] = array[row[present]]
    return out


def interpolate_gaps(x: np.ndarray, max_gap: int) -> np.ndarray:
    """Linearly fill interior NaN runs of at most ``max_gap`` rows along axis 0 of ``x (T, ...)``."""
    if max_gap <= 0:
        return x
    flat = x.reshape(x.shape[0], -1).copy()
    t = np.arange(flat.shape[0])
    for j in range(flat.shape[1]):
        col = flat[:, j]
        bad = np.isnan(col)
        if not bad.any() or bad.all():
            continue
        good = ~bad
        filled = np.interp(t, t[good], col[good])
        # length of the NaN run each missing sample belongs to; only interior runs qualify
        edges = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
        starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        for a, b in zip(starts, stops):
            if a > 0 and b < len(col) and b - a <= max_gap:
                col[a:b] = filled[a:b]
    return flat.reshape(x.shape)


def valid_runs(valid: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]))


def derivatives(x: np.ndarray, dt: float, window: int, order: int = 3) -> list[np.ndarray]:
    """Savitzky–Golay derivatives 1..order of ``x (T, C)`` along time, per run of valid rows.

    A row is valid when all its columns are finite. Runs shorter than the filter window use
    repeated central differences (runs of one sample give NaN). Returns ``order`` arrays (T, C).
    """
    t, c = x.shape
    outs = [np.full((t, c), np.nan) for _ in range(order)]
    valid = np.isfinite(x).all(axis=1)
    for a, b in valid_runs(valid):
        seg = x[a:b]
        n = b - a
        if n >= window:
            for d in range(1, order + 1):
                outs[d - 1][a:b] = savgol_filter(seg, window, polyorder=3, deriv=d, delta=dt, axis=0, mode="interp")
        elif n >= 2:
            cur = seg
            for d in range(1, order + 1):
                cur = np.gradient(cur, dt, axis=0) if cur.shape[0] >= 2 else np.full_like(cur, np.nan)
                outs[d - 1][a:b] = cur
    return outs


def grouped_derivatives(x: np.ndarray, dt: float, window: int, order: int = 3) -> list[np.ndarray]:
    """Derivatives of ``x (T, G, D)`` where each group of D columns has its own valid runs
    (one keypoint going missing does not cut the others' runs). Returns ``order`` arrays (T, G, D)."""
    t, g, d = x.shape
    outs = [np.full((t, g, d), np.nan) for _ in range(order)]
    valid = np.isfinite(x).all(axis=2)  # (T, G)
    # groups that share one pattern of valid rows are filtered together (one call per pattern)
    patterns: dict[bytes, list[int]] = {}
    for j in range(g):
        patterns.setdefault(np.packbits(valid[:, j]).tobytes(), []).append(j)
    for members in patterns.values():
        cols = np.asarray(members)
        block = x[:, cols].reshape(t, -1)
        for o, values in enumerate(derivatives(block, dt, window, order)):
            outs[o][:, cols] = values.reshape(t, len(cols), d)
    return outs


def principal_heading(points: np.ndarray, centroid: np.ndarray, reference: int) -> np.ndarray:
    """Angle of the main axis of each frame's points ``(T, K, 2)``, signed towards ``reference``."""
    rel = points - centroid[:, None, :]
    rel0 = np.nan_to_num(rel)
    cov = np.einsum("tki,tkj->tij", rel0, rel0)
    vals, vecs = np.linalg.eigh(cov)
    axis = vecs[:, :, 1]  # eigenvector of the largest eigenvalue
    proj = np.einsum("ti,ti->t", axis, np.nan_to_num(rel[:, reference]))
    sign = np.sign(proj)
    sign[~np.isfinite(rel[:, reference]).all(axis=1)] = 0
    # where the reference point is missing or on the axis' normal, keep continuity with the previous frame
    for t in range(len(sign)):
        if sign[t] == 0:
            prev = axis[t - 1] if t > 0 else axis[t]
            sign[t] = 1.0 if np.dot(axis[t], prev) >= 0 else -1.0
        axis[t] *= sign[t]
    heading = np.arctan2(axis[:, 1], axis[:, 0])
    heading[~np.isfinite(points).all(axis=2).any(axis=1)] = np.nan
    heading[vals[:, 1] <= 1e-9] = np.nan
    return heading


def rotate(v: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v (T, ..., 2)`` by ``-angle (T,)`` (into the body frame)."""
    c, s = np.cos(angle), np.sin(angle)
    shape = (-1,) + (1,) * (v.ndim - 2)
    c, s = c.reshape(shape), s.reshape(shape)
    x, y = v[..., 0], v[..., 1]
    return np.stack([c * x + s * y, -s * x + c * y], axis=-1)


def unwrap_runs(angle: np.ndarray) -> np.ndarray:
    """Angles ``(T, C)`` unwrapped along time, each column on its own runs of finite values."""
    out = angle.copy()
    finite = np.isfinite(angle)
    whole = finite.all(axis=0)  # one run: every column at once (hundreds of keypoint pairs)
    if whole.any():
        out[:, whole] = np.unwrap(angle[:, whole], axis=0)
    for j in np.flatnonzero(~whole):
        col = angle[:, j]
        for a, b in valid_runs(finite[:, j]):
            out[a:b, j] = np.unwrap(col[a:b])
    return out
