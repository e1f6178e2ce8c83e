"""Motion and frequency features of keypoint tracks over sliding windows.

``motion_features(tracks)`` turns any :class:`~fomm_kp.tracks.Tracks` (ours, DeepLabCut's, SLEAP's)
into a :class:`Features` table: one row per window, one column per named feature, in fps-aware
units (px, px/s, px/s², rad/s, Hz). Windows share their centres across several lengths at once
(a fast and a slow pathway, as SlowFast does for pixels); each column name ends with its window
length, e.g. ``nose.speed.mean@0.5s``.

Per frame, before windowing:
- points with a score below ``min_score`` become missing; gaps up to ``max_gap_seconds`` are
  linearly interpolated, longer gaps stay NaN (window statistics ignore them; a window with no
  valid sample gives NaN, which classifiers treat as "no information");
- derivatives (velocity, acceleration, jerk) come from Savitzky–Golay filters over each run of
  valid samples, so a constant velocity gives an acceleration of exactly zero;
- egocentric alignment (default): coordinates relative to the centroid, rotated so that the body
  axis (``heading`` keypoints, or the principal axis of the points) points along +x.

What is computed (per subject; names prefixed by the subject when there are several):
speed, velocity, acceleration and jerk per keypoint; displacement over the window; egocentric
position; pairwise distances and their rates; angles of keypoint pairs (egocentric) and their
angular velocities; centroid speed, forward/lateral velocity, heading angular velocity, path
straightness; local rotation and scale rates from jacobians; confidence statistics; Welch band
powers, dominant frequency and spectral entropy; optionally Morlet wavelet amplitudes.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.behaviour.frequency import wavelet_frequencies, wavelet_spectrogram, welch_window_features
from fomm_kp.files import atomic_write
from fomm_kp.tracks import Tracks

__all__ = [
    "FeatureConfig",
    "Features",
    "FrameSignals",
    "motion_features",
    "frame_signals",
    "resolve_config",
    "window_bounds",
    "window_stats",
    "save_features",
    "load_features",
    "concat_features",
    "plot_keypoint_spectrogram",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureConfig:
    """How windows are cut and which feature groups are computed.

    Attributes:
        window_seconds: window lengths, shortest first; the first one defines each window's
            frame span (``Features.start_frames/end_frames``) used for per-frame labels.
        stride_seconds: step between window centres.
        min_score: points with a lower confidence count as missing.
        max_gap_seconds: gaps up to this long are interpolated; longer ones stay missing.
        derivative_seconds: Savitzky–Golay window for derivatives (at least 5 samples).
        egocentric: align poses to the centroid and body heading.
        heading: ``(tail, head)`` keypoint names defining the body axis; None = principal axis.
        heading_reference: with the principal axis, the keypoint whose side the axis points to.
            None = the keypoint farthest from the centroid on average, chosen per call and
            recorded in ``Features.config``; use :func:`resolve_config` to fix it once for
            several recordings so that they share one body frame.
        pairwise: pairwise distances and pair angles (K·(K−1)/2 pairs).
        jacobians: local rotation/scale rates when the tracks carry jacobians.
        confidence: score statistics and missing fractions.
        bands_hz: Welch band edges; empty turns the Welch features off.
        wavelet_num_freqs: Morlet wavelet frequencies per keypoint (0 = off).
        wavelet_range_hz: ``(f_min, f_max)`` of the wavelet frequencies.
    """

    window_seconds: tuple[float, ...] = (0.5, 2.0)
    stride_seconds: float = 0.25
    min_score: float = 0.0
    max_gap_seconds: float = 0.5
    derivative_seconds: float = 0.2
    egocentric: bool = True
    heading: tuple[str, str] | None = None
    heading_reference: str | None = None
    pairwise: bool = True
    jacobians: bool = True
    confidence: bool = True
    bands_hz: tuple[tuple[float, float], ...] = ((0.5, 2.0), (2.0, 5.0), (5.0, 15.0))
    wavelet_num_freqs: int = 0
    wavelet_range_hz: tuple[float, float] = (0.5, 12.0)

    def __post_init__(self) -> None:
        windows = tuple(float(w) for w in self.window_seconds)
        if not windows or any(w <= 0 for w in windows):
            raise FommError(f"window_seconds must be positive lengths, got {self.window_seconds}")
        object.__setattr__(self, "window_seconds", windows)
        if self.stride_seconds <= 0:
            raise FommError(f"stride_seconds must be positive, got {self.stride_seconds}")
        if not 0.0 <= self.min_score <= 1.0:
            raise FommError(f"min_score must be in [0, 1], got {self.min_score}")
        if self.max_gap_seconds < 0 or self.derivative_seconds <= 0:
            raise FommError("max_gap_seconds must be >= 0 and derivative_seconds > 0")
        bands = tuple((float(lo), float(hi)) for lo, hi in self.bands_hz)
        if any(not 0 <= lo < hi for lo, hi in bands):
            raise FommError(f"bands_hz must be (low, high) pairs with 0 <= low < high, got {self.bands_hz}")
        object.__setattr__(self, "bands_hz", bands)
        if self.heading is not None:
            if len(self.heading) != 2:
                raise FommError(f"heading must name two keypoints (tail, head), got {self.heading}")
            object.__setattr__(self, "heading", (str(self.heading[0]), str(self.heading[1])))
        object.__setattr__(self, "wavelet_range_hz", (float(self.wavelet_range_hz[0]), float(self.wavelet_range_hz[1])))
        if self.wavelet_num_freqs < 0:
            raise FommError(f"wavelet_num_freqs must be >= 0, got {self.wavelet_num_freqs}")

    def to_dict(self) -> dict:
        """Plain JSON-able data (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        """Build from :meth:`to_dict` output; an unknown key is an error naming it."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise FommError(f"unknown feature config key(s): {', '.join(sorted(unknown))}")
        data = dict(data)
        for key in ("window_seconds",):
            if key in data:
                data[key] = tuple(data[key])
        if "bands_hz" in data:
            data["bands_hz"] = tuple(tuple(b) for b in data["bands_hz"])
        if data.get("heading") is not None:
            data["heading"] = tuple(data["heading"])
        if "wavelet_range_hz" in data:
            data["wavelet_range_hz"] = tuple(data["wavelet_range_hz"])
        return cls(**data)


@dataclass(frozen=True, eq=False)
class Features:
    """A table of window features.

    Attributes:
        values: float32 ``(W, F)``; NaN where a feature has no valid data in a window.
        names: F feature names (``<part>.<quantity>.<stat>@<window>s``).
        start_frames: int64 ``(W,)`` first original frame index of each window's span.
        end_frames: int64 ``(W,)`` one past the last frame of the span (exclusive).
        fps: frame rate of the source video.
        video: source video path ("" when unknown).
        config: the :class:`FeatureConfig` as plain data (empty for features not made here).
    """

    values: np.ndarray
    names: tuple[str, ...]
    start_frames: np.ndarray
    end_frames: np.ndarray
    fps: float
    video: str = ""
    config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float32)
        if values.ndim != 2:
            raise FommError(f"Features.values must be (windows, features), got {values.shape}")
        w, f = values.shape
        if len(self.names) != f:
            raise FommError(f"Features has {f} columns but {len(self.names)} names")
        starts = np.asarray(self.start_frames, dtype=np.int64)
        ends = np.asarray(self.end_frames, dtype=np.int64)
        if starts.shape != (w,) or ends.shape != (w,):
            raise FommError(f"Features needs start/end frames of shape ({w},), got {starts.shape}, {ends.shape}")
        if np.any(ends <= starts):
            raise FommError("Features windows must end after they start")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "start_frames", starts)
        object.__setattr__(self, "end_frames", ends)
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "video", str(self.video))

    @property
    def num_windows(self) -> int:
        return int(self.values.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.values.shape[1])

    def select(self, index: np.ndarray | slice) -> "Features":
        """A new Features with the given rows (slice, boolean mask or index array)."""
        return Features(
            self.values[index], self.names, self.start_frames[index], self.end_frames[index], self.fps, self.video, self.config
        )

    def columns(self, names: Sequence[str]) -> np.ndarray:
        """The values of the named columns, ``(W, len(names))``; a missing name is an error."""
        lookup = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in lookup]
        if missing:
            raise FommError(f"features lack {len(missing)} column(s) the classifier needs, e.g. '{missing[0]}'")
        return self.values[:, [lookup[n] for n in names]]


@dataclass(frozen=True, eq=False)
class FrameSignals:
    """Per-frame signals on a regular frame grid (the input of temporal models).

    Attributes:
        values: float32 ``(T, C)``; NaN where missing.
        names: C names.
        frame_indices: int64 ``(T,)`` original frame index of each row (regular step).
        fps: effective rate of the rows (video fps / step).
        step: frames of the source video per row.
    """

    values: np.ndarray
    names: tuple[str, ...]
    frame_indices: np.ndarray
    fps: float
    step: int


# --------------------------------------------------------------------------------------------
# Per-frame preparation
# --------------------------------------------------------------------------------------------


def _regular_grid(tracks: Tracks) -> tuple[np.ndarray, int, np.ndarray]:
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


def _on_grid(array: np.ndarray, row: np.ndarray, fill: float) -> np.ndarray:
    out = np.full((len(row),) + array.shape[1:], fill, dtype=np.float64)
    present = row >= 0
    out[present] = array[row[present]]
    return out


def _interpolate_gaps(x: np.ndarray, max_gap: int) -> np.ndarray:
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


def _valid_runs(valid: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]))


def _derivatives(x: np.ndarray, dt: float, window: int, order: int = 3) -> list[np.ndarray]:
    """Savitzky–Golay derivatives 1..order of ``x (T, C)`` along time, per run of valid rows.

    A row is valid when all its columns are finite. Runs shorter than the filter window use
    repeated central differences (runs of one sample give NaN). Returns ``order`` arrays (T, C).
    """
    from scipy.signal import savgol_filter

    t, c = x.shape
    outs = [np.full((t, c), np.nan) for _ in range(order)]
    valid = np.isfinite(x).all(axis=1)
    for a, b in _valid_runs(valid):
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


def _grouped_derivatives(x: np.ndarray, dt: float, window: int, order: int = 3) -> list[np.ndarray]:
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
        for o, values in enumerate(_derivatives(block, dt, window, order)):
            outs[o][:, cols] = values.reshape(t, len(cols), d)
    return outs


def _principal_heading(points: np.ndarray, centroid: np.ndarray, reference: int) -> np.ndarray:
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


def _rotate(v: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v (T, ..., 2)`` by ``-angle (T,)`` (into the body frame)."""
    c, s = np.cos(angle), np.sin(angle)
    shape = (-1,) + (1,) * (v.ndim - 2)
    c, s = c.reshape(shape), s.reshape(shape)
    x, y = v[..., 0], v[..., 1]
    return np.stack([c * x + s * y, -s * x + c * y], axis=-1)


def _unwrap_runs(angle: np.ndarray) -> np.ndarray:
    out = angle.copy()
    for j in range(angle.shape[1]):
        col = angle[:, j]
        for a, b in _valid_runs(np.isfinite(col)):
            out[a:b, j] = np.unwrap(col[a:b])
    return out


@dataclass
class _Signals:
    """Per-frame signals of one subject and the window statistics each gets."""

    columns: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    stats: list[tuple[str, ...]] = field(default_factory=list)

    def add(self, name: str, values: np.ndarray, stats: tuple[str, ...]) -> None:
        self.columns.append(np.asarray(values, dtype=np.float64))
        self.names.append(name)
        self.stats.append(stats)


def _subject_signals(
    kp: np.ndarray,
    scores: np.ndarray,
    jac: np.ndarray | None,
    names: tuple[str, ...],
    config: FeatureConfig,
    fs: float,
) -> tuple[_Signals, dict[str, np.ndarray]]:
    """Per-frame signals of one subject: ``kp (T, K, 2)``, ``scores (T, K)``, ``jac (T, K, 2, 2)``.

    Returns the signals and the arrays the window-level features need (positions for
    displacements, pose coordinates for spectra).
    """
    t, k, _ = kp.shape
    dt = 1.0 / fs
    window = max(5, int(round(config.derivative_seconds * fs)) | 1)
    sig = _Signals()
    present = np.isfinite(kp).all(axis=2)  # (T, K)
    centroid = np.where(present[..., None], kp, 0.0).sum(axis=1) / np.maximum(present.sum(axis=1), 1)[:, None]
    centroid[~present.any(axis=1)] = np.nan

    if config.egocentric and k >= 2:
        if config.heading is not None:
            missing = [h for h in config.heading if h not in names]
            if missing:
                raise FommError(f"heading keypoint '{missing[0]}' is not one of {list(names)}")
            tail, head = names.index(config.heading[0]), names.index(config.heading[1])
            axis = kp[:, head] - kp[:, tail]
            heading = np.arctan2(axis[:, 1], axis[:, 0])
        else:
            if config.heading_reference is None:
                raise FommError("internal: heading_reference must be resolved before computing signals")
            if config.heading_reference not in names:
                raise FommError(f"heading_reference '{config.heading_reference}' is not one of {list(names)}")
            heading = _principal_heading(kp, centroid, names.index(config.heading_reference))
    else:
        heading = np.zeros(t)
    pose = _rotate(kp - centroid[:, None], heading)  # (T, K, 2) egocentric (or centroid-relative)

    v, a, j = _grouped_derivatives(kp, dt, window)
    pose_v = _grouped_derivatives(pose, dt, window, order=1)[0]
    speed = np.linalg.norm(v, axis=-1)
    for i, name in enumerate(names):
        sig.add(f"{name}.speed", speed[:, i], ("mean", "std", "max"))
        sig.add(f"{name}.vx", pose_v[:, i, 0], ("mean", "std"))
        sig.add(f"{name}.vy", pose_v[:, i, 1], ("mean", "std"))
        sig.add(f"{name}.accel", np.linalg.norm(a[:, i], axis=-1), ("mean", "max"))
        sig.add(f"{name}.jerk", np.linalg.norm(j[:, i], axis=-1), ("mean",))
        if k >= 2:
            sig.add(f"{name}.x", pose[:, i, 0], ("mean", "std"))
            sig.add(f"{name}.y", pose[:, i, 1], ("mean", "std"))

    cv = _derivatives(centroid, dt, window, order=1)[0]
    sig.add("centroid.speed", np.linalg.norm(cv, axis=-1), ("mean", "std", "max"))
    body_v = _rotate(cv, heading)
    if config.egocentric and k >= 2:
        sig.add("centroid.forward", body_v[:, 0], ("mean", "std"))
        sig.add("centroid.lateral", body_v[:, 1], ("mean", "std"))
        turn = _derivatives(_unwrap_runs(heading[:, None]), dt, window, order=1)[0][:, 0]
        sig.add("heading.angvel", turn, ("mean", "absmean"))

    if config.pairwise and k >= 2:
        ii, jj = np.triu_indices(k, 1)
        diff = kp[:, jj] - kp[:, ii]  # (T, P, 2)
        dist = np.linalg.norm(diff, axis=-1)
        rate = _grouped_derivatives(dist[..., None], dt, window, order=1)[0][..., 0]
        world_angle = np.arctan2(diff[..., 1], diff[..., 0])
        angvel = _grouped_derivatives(_unwrap_runs(world_angle)[..., None], dt, window, order=1)[0][..., 0]
        ego_angle = world_angle - heading[:, None]
        for p, (a_, b_) in enumerate(zip(ii, jj)):
            pair = f"{names[a_]}-{names[b_]}"
            sig.add(f"{pair}.dist", dist[:, p], ("mean", "std"))
            sig.add(f"{pair}.dist_rate", rate[:, p], ("mean", "absmean"))
            sig.add(f"{pair}.angle_cos", np.cos(ego_angle[:, p]), ("mean",))
            sig.add(f"{pair}.angle_sin", np.sin(ego_angle[:, p]), ("mean",))
            sig.add(f"{pair}.angvel", angvel[:, p], ("mean", "absmean"))

    if config.jacobians and jac is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            det = jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]
            inv = np.stack(
                [np.stack([jac[..., 1, 1], -jac[..., 0, 1]], -1), np.stack([-jac[..., 1, 0], jac[..., 0, 0]], -1)], -2
            ) / det[..., None, None]
            rel = np.einsum("tkij,tkjl->tkil", jac[1:], inv[:-1])  # J_{t+1} J_t^-1
            rot = np.arctan2(rel[..., 1, 0] - rel[..., 0, 1], rel[..., 0, 0] + rel[..., 1, 1]) * fs
            scale = 0.5 * np.log(np.abs(rel[..., 0, 0] * rel[..., 1, 1] - rel[..., 0, 1] * rel[..., 1, 0])) * fs
        rot = np.concatenate([rot, np.full((1, k), np.nan)])
        scale = np.concatenate([scale, np.full((1, k), np.nan)])
        for i, name in enumerate(names):
            sig.add(f"{name}.rot_rate", rot[:, i], ("mean", "absmean"))
            sig.add(f"{name}.scale_rate", scale[:, i], ("mean", "absmean"))

    if config.confidence:
        missing = ~np.isfinite(kp).all(axis=-1)
        for i, name in enumerate(names):
            sig.add(f"{name}.score", np.where(missing[:, i], np.nan, scores[:, i]), ("mean", "min"))
            sig.add(f"{name}.missing", missing[:, i].astype(np.float64), ("mean",))
    return sig, {"positions": kp, "centroid": centroid, "pose": pose}


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


def window_bounds(num_rows: int, fs: float, config: FeatureConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row ranges ``[a, b)`` of every window for each window length, sharing centres.

    The first (shortest) length tiles the rows with stride ``stride_seconds``: full windows from
    the start, plus one final window that ends at the last row, so every row lies in some window.
    Longer windows are centred on the same centres where they fit and shifted inward at the ends
    of the recording, so each keeps its full length (or spans every row of a shorter recording)
    and holds the short window that shares its centre.
    """
    lengths = [max(2, int(round(w * fs))) for w in config.window_seconds]
    stride = max(1, int(round(config.stride_seconds * fs)))
    first = min(lengths[0], num_rows)
    starts = list(range(0, num_rows - first + 1, stride))
    if starts[-1] + first < num_rows:
        starts.append(num_rows - first)
    starts_arr = np.asarray(starts, dtype=np.int64)
    centres = starts_arr + first / 2.0
    out = []
    for length in lengths:
        a = np.clip(np.round(centres - length / 2.0).astype(np.int64), 0, None)
        b = np.minimum(a + length, num_rows)
        a = np.maximum(np.minimum(a, b - length), 0)
        out.append((a, b))
    out[0] = (starts_arr, starts_arr + first)
    return out


def window_stats(x: np.ndarray, a: np.ndarray, b: np.ndarray, stat: str) -> np.ndarray:
    """NaN-ignoring statistic of ``x (T, C)`` over each window ``[a, b)``: ``(W, C)``."""
    valid = np.isfinite(x)
    x0 = np.where(valid, x, 0.0)
    zero = np.zeros((1, x.shape[1]))
    count = np.concatenate([zero, np.cumsum(valid, axis=0)])
    n = count[b] - count[a]
    with np.errstate(invalid="ignore", divide="ignore"):
        if stat in ("mean", "std", "absmean"):
            src = np.abs(x0) if stat == "absmean" else x0
            csum = np.concatenate([zero, np.cumsum(src, axis=0)])
            mean = (csum[b] - csum[a]) / n
            if stat != "std":
                return np.where(n > 0, mean, np.nan)
            csq = np.concatenate([zero, np.cumsum(x0**2, axis=0)])
            var = (csq[b] - csq[a]) / n - mean**2
            return np.where(n > 1, np.sqrt(np.maximum(var, 0.0)), np.nan)
    if stat in ("max", "min"):
        fill = -np.inf if stat == "max" else np.inf
        filled = np.where(valid, x, fill)
        reduce = np.max if stat == "max" else np.min
        out = np.stack([reduce(filled[s:e], axis=0) for s, e in zip(a, b)])
        return np.where(np.isfinite(out), out, np.nan)
    raise FommError(f"unknown window statistic '{stat}'")


def _displacement(pos: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between the first and last positions of each window: ``pos (T, C, 2)`` → ``(W, C)``."""
    return np.linalg.norm(pos[b - 1] - pos[a], axis=-1)


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def _prepared(tracks: Tracks, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, int, float]:
    """Keypoints, scores and jacobians on a regular grid with short gaps interpolated."""
    grid, step, row = _regular_grid(tracks)
    fs = tracks.fps / step
    kp = _on_grid(tracks.keypoints, row, np.nan)
    scores = _on_grid(tracks.scores, row, 0.0)
    low = scores < config.min_score
    kp[low] = np.nan
    kp[np.isnan(kp).any(axis=-1)] = np.nan
    max_gap = int(round(config.max_gap_seconds * fs))
    kp = _interpolate_gaps(kp, max_gap)
    jac = None
    if config.jacobians and tracks.jacobians is not None:
        jac = _on_grid(tracks.jacobians, row, np.nan)
        jac[np.isnan(kp).any(axis=-1)] = np.nan
        jac = _interpolate_gaps(jac, max_gap)
    return kp, scores, jac, grid, step, fs


def resolve_config(tracks: Tracks | Sequence[Tracks], config: FeatureConfig | None = None) -> FeatureConfig:
    """Fill in the settings that depend on the data (the heading reference keypoint).

    With several recordings the reference is chosen from all of them together, so that their
    features share one body frame. Returns the config unchanged when nothing is left to choose.
    """
    config = config or FeatureConfig()
    if not config.egocentric or config.heading is not None or config.heading_reference is not None:
        return config
    items = [tracks] if isinstance(tracks, Tracks) else list(tracks)
    if not items:
        raise FommError("no tracks to resolve the feature settings from")
    names = items[0].keypoint_names
    if any(t.keypoint_names != names for t in items):
        raise FommError("tracks with different keypoint names cannot share one feature config")
    if len(names) < 2:
        return config
    total = np.zeros(len(names))
    count = np.zeros(len(names))
    for t in items:
        kp = t.keypoints.astype(np.float64)
        present = np.isfinite(kp).all(axis=-1)
        centroid = np.where(present[..., None], kp, 0.0).sum(axis=2) / np.maximum(present.sum(axis=2), 1)[..., None]
        dist = np.linalg.norm(kp - centroid[:, :, None], axis=-1)
        ok = np.isfinite(dist)
        total += np.where(ok, dist, 0.0).sum(axis=(0, 1))
        count += ok.sum(axis=(0, 1))
    spread = np.where(count > 0, total / np.maximum(count, 1), -np.inf)
    reference = names[int(np.argmax(spread))]
    log.info("egocentric frame: body axis signed towards '%s' (farthest from the centroid on average)", reference)
    return replace(config, heading_reference=reference)


def motion_features(tracks: Tracks, config: FeatureConfig | None = None) -> Features:
    """Window features of ``tracks`` (see the module docstring for what is computed).

    Args:
        tracks: keypoints ``(T, N, K, 2)`` in pixels, any source.
        config: windows and feature groups; defaults to :class:`FeatureConfig()`.

    Returns:
        :class:`Features` with ``values (W, F)``; window spans from ``config.window_seconds[0]``.
    """
    if not isinstance(tracks, Tracks):
        raise FommError(f"motion_features needs Tracks, got {type(tracks).__name__}")
    config = resolve_config(tracks, config)
    if tracks.fps <= 0 or not np.isfinite(tracks.fps):
        raise FommError(f"tracks need a positive fps, got {tracks.fps}")
    kp, scores, jac, grid, step, fs = _prepared(tracks, config)
    t = len(grid)
    bounds = window_bounds(t, fs, config)
    multi = tracks.num_subjects > 1
    blocks: list[np.ndarray] = []
    names: list[str] = []
    wavelet_freqs = None
    if config.wavelet_num_freqs:
        wavelet_freqs = wavelet_frequencies(*config.wavelet_range_hz, config.wavelet_num_freqs, fs)
    for n, subject in enumerate(tracks.subject_names):
        prefix = f"{subject}." if multi else ""
        sig, extra = _subject_signals(kp[:, n], scores[:, n], None if jac is None else jac[:, n], tracks.keypoint_names, config, fs)
        matrix = np.stack(sig.columns, axis=1) if sig.columns else np.zeros((t, 0))
        k = tracks.num_keypoints
        pose = extra["pose"].reshape(t, -1)
        spec = None
        if wavelet_freqs is not None:
            spec = wavelet_spectrogram(pose, fs, wavelet_freqs)  # (T, F, K*2)
            spec = spec.reshape(t, len(wavelet_freqs), k, 2).sum(axis=-1)  # (T, F, K)
            spec = np.log10(spec + 1e-3).reshape(t, -1)
        for (a, b), seconds in zip(bounds, config.window_seconds):
            tag = f"@{seconds:g}s"
            by_stat: dict[str, list[int]] = {}
            for c, stats in enumerate(sig.stats):
                for s in stats:
                    by_stat.setdefault(s, []).append(c)
            for s, cols in by_stat.items():
                blocks.append(window_stats(matrix[:, cols], a, b, s))
                names += [f"{prefix}{sig.names[c]}.{s}{tag}" for c in cols]
            blocks.append(_displacement(extra["positions"], a, b))
            names += [f"{prefix}{name}.displacement{tag}" for name in tracks.keypoint_names]
            disp = _displacement(extra["centroid"][:, None], a, b)[:, 0]
            # path length: the b - a - 1 steps inside the window (mean valid step times their number)
            steps = np.concatenate([[np.nan], np.linalg.norm(np.diff(extra["centroid"], axis=0), axis=-1)])[:, None]
            path_len = window_stats(steps, np.minimum(a + 1, b - 1), b, "mean")[:, 0] * (b - a - 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                straight = np.where(path_len > 1e-6, disp / path_len, np.nan)
            blocks.append(np.stack([disp, np.clip(straight, 0.0, 1.0)], axis=1))
            names += [f"{prefix}centroid.displacement{tag}", f"{prefix}centroid.straightness{tag}"]
            if config.bands_hz:
                # egocentric pose of each keypoint, then the centroid in image coordinates
                spectral = np.concatenate([pose, extra["centroid"]], axis=1) if k >= 2 else extra["centroid"]
                parts = list(tracks.keypoint_names) + ["centroid"] if k >= 2 else ["centroid"]
                group = np.repeat(np.arange(len(parts)), 2)
                values, stat_names = welch_window_features(spectral, fs, a, b, config.bands_hz, group)
                blocks.append(values)
                names += [f"{prefix}{name}.{s}{tag}" for name in parts for s in stat_names]
            if spec is not None:
                blocks.append(window_stats(spec, a, b, "mean"))
                names += [f"{prefix}{name}.wavelet[{f:.3g}Hz]{tag}" for f in wavelet_freqs for name in tracks.keypoint_names]
    values = np.concatenate(blocks, axis=1).astype(np.float32)
    a0, b0 = bounds[0]
    return Features(
        values=values,
        names=tuple(names),
        start_frames=grid[a0],
        end_frames=grid[b0 - 1] + step,
        fps=tracks.fps,
        video=tracks.video,
        config=config.to_dict(),
    )


def frame_signals(tracks: Tracks, config: FeatureConfig | None = None) -> FrameSignals:
    """Per-frame pose and motion signals (egocentric positions, velocities, speeds, centroid motion).

    The compact input of temporal models: ``values (T, C)`` on the regular frame grid, NaN where
    missing. Columns per subject: ``<kp>.x, <kp>.y`` (pose), ``<kp>.vx, <kp>.vy``, ``<kp>.speed``,
    ``centroid.speed`` (+ forward, lateral, heading angular velocity when egocentric).
    """
    config = resolve_config(tracks, config)
    kp, scores, jac, grid, step, fs = _prepared(tracks, config)
    keep_suffixes = (".x", ".y", ".vx", ".vy", ".speed", ".forward", ".lateral", ".angvel")
    columns, names = [], []
    multi = tracks.num_subjects > 1
    lean = replace(config, pairwise=False, jacobians=False, confidence=False)
    for n, subject in enumerate(tracks.subject_names):
        sig, _ = _subject_signals(kp[:, n], scores[:, n], None, tracks.keypoint_names, lean, fs)
        for name, col in zip(sig.names, sig.columns):
            if name.endswith(keep_suffixes):
                columns.append(col)
                names.append(f"{subject}.{name}" if multi else name)
    return FrameSignals(np.stack(columns, axis=1).astype(np.float32), tuple(names), grid, fs, step)


def concat_features(parts: Sequence[Features]) -> Features:
    """Stack the windows of several Features with identical columns (e.g. several videos).

    The result's ``video`` is the first part's; keep the parts when videos must stay apart.
    """
    if not parts:
        raise FommError("no features to concatenate")
    names = parts[0].names
    for p in parts[1:]:
        if p.names != names:
            raise FommError(f"cannot concatenate features with different columns ({p.video} vs {parts[0].video})")
    return Features(
        np.concatenate([p.values for p in parts]),
        names,
        np.concatenate([p.start_frames for p in parts]),
        np.concatenate([p.end_frames for p in parts]),
        parts[0].fps,
        parts[0].video,
        parts[0].config,
    )


def save_features(features: Features, path: str | os.PathLike) -> Path:
    """Write Features as ``.npz`` (arrays and JSON text only, no pickles) or ``.csv``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh,
                    values=features.values,
                    names=np.array(features.names, dtype=np.str_),
                    start_frames=features.start_frames,
                    end_frames=features.end_frames,
                    fps=np.float64(features.fps),
                    video=np.str_(features.video),
                    config=np.str_(json.dumps(features.config)),
                    kind=np.str_("fomm_kp.features"),
                )

        return atomic_write(path, write)
    if suffix == ".csv":
        import pandas as pd

        df = pd.DataFrame(features.values, columns=list(features.names))
        df.insert(0, "end_frame", features.end_frames)
        df.insert(0, "start_frame", features.start_frames)
        return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.6g"))
    raise FommError(f"cannot write features as '{suffix}' ({path}): use .npz or .csv")


def load_features(path: str | os.PathLike) -> Features:
    """Read Features written by :func:`save_features` (``.npz``)."""
    path = Path(path)
    if not path.is_file():
        raise FommError(f"features file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "kind" not in data or str(data["kind"]) != "fomm_kp.features":
                raise FommError(f"{path} is not a fomm_kp features file")
            return Features(
                values=data["values"],
                names=tuple(str(s) for s in data["names"]),
                start_frames=data["start_frames"],
                end_frames=data["end_frames"],
                fps=float(data["fps"]),
                video=str(data["video"]),
                config=json.loads(str(data["config"])),
            )
    except (KeyError, ValueError, OSError) as exc:
        raise FommError(f"{path} is not a fomm_kp features file: {exc}") from exc


def plot_keypoint_spectrogram(
    tracks: Tracks, path: str | os.PathLike, config: FeatureConfig | None = None, subject: int = 0, num_freqs: int = 24
) -> Path:
    """PNG of Morlet wavelet amplitudes: the centroid (image coordinates) and each keypoint's
    egocentric position, x and y amplitudes summed, over ``config.wavelet_range_hz``."""
    from fomm_kp.behaviour.frequency import plot_spectrogram

    config = resolve_config(tracks, config)
    if not 0 <= subject < tracks.num_subjects:
        raise FommError(f"subject {subject} out of range ({tracks.num_subjects} subjects)")
    kp, scores, _, grid, step, fs = _prepared(tracks, config)
    sig, extra = _subject_signals(kp[:, subject], scores[:, subject], None, tracks.keypoint_names,
                                  replace(config, pairwise=False, confidence=False), fs)
    parts = [extra["centroid"][:, None, :]]
    names = ["centroid"]
    if tracks.num_keypoints >= 2:
        parts.append(extra["pose"])
        names += [f"{n} (ego)" if config.egocentric else n for n in tracks.keypoint_names]
    signals = np.concatenate(parts, axis=1)  # (T, 1 + K, 2)
    freqs = wavelet_frequencies(*config.wavelet_range_hz, num_freqs, fs)
    amp = wavelet_spectrogram(signals.reshape(len(grid), -1), fs, freqs)
    amp = amp.reshape(len(grid), len(freqs), len(names), 2).sum(axis=-1)
    title = f"Morlet wavelet amplitude: {Path(tracks.video).name or 'tracks'} ({tracks.subject_names[subject]})"
    return plot_spectrogram(amp, freqs, grid, tracks.fps, names, path, title=title)
