"""Per-frame signals of keypoint tracks, before any windowing.

Tracks go onto a regular frame grid (:func:`prepare`): points with a score below ``min_score``
become missing and gaps up to ``max_gap_seconds`` are linearly interpolated; longer gaps stay NaN.
Derivatives (velocity, acceleration, jerk) come from Savitzky–Golay filters over each run of valid
samples, so a constant velocity gives an acceleration of exactly zero. Egocentric alignment
(default): coordinates relative to the centroid, rotated so that the body axis (``heading``
keypoints, or the principal axis of the points, :func:`resolve_config`) points along +x.
To add a per-frame feature, add a column in :func:`subject_signals` (or one of its parts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Sequence

import numpy as np

from fomm_kp.behaviour.timeseries import (
    derivatives,
    grouped_derivatives,
    interpolate_gaps,
    on_grid,
    principal_heading,
    regular_grid,
    rotate,
    unwrap_runs,
)
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.errors import FommError
from fomm_kp.tracks import Tracks

__all__ = ["FrameSignals", "SubjectSignals", "subject_signals", "Prepared", "prepare", "resolve_config", "frame_signals"]

log = logging.getLogger(__name__)


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


@dataclass
class SubjectSignals:
    """Per-frame signals of one subject, the window statistics each gets, and the arrays the
    window-level features need: ``positions`` ``(T, K, 2)`` (displacements), ``centroid`` ``(T, 2)``
    and the egocentric ``pose`` ``(T, K, 2)`` (spectra)."""

    positions: np.ndarray
    centroid: np.ndarray
    pose: np.ndarray
    columns: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    stats: list[tuple[str, ...]] = field(default_factory=list)

    def add(self, name: str, values: np.ndarray, stats: tuple[str, ...]) -> None:
        self.columns.append(np.asarray(values, dtype=np.float64))
        self.names.append(name)
        self.stats.append(stats)


class _Clock(NamedTuple):
    """Sample spacing and the Savitzky–Golay window (odd, at least 5 samples) of derivatives."""

    dt: float
    window: int

    @classmethod
    def of(cls, fs: float, config: FeatureConfig) -> "_Clock":
        return cls(1.0 / fs, max(5, int(round(config.derivative_seconds * fs)) | 1))

    def rate(self, x: np.ndarray) -> np.ndarray:
        """First derivative of ``x (T, G, D)``, each group on its own valid runs."""
        return grouped_derivatives(x, self.dt, self.window, order=1)[0]


def _centroid(kp: np.ndarray) -> np.ndarray:
    present = np.isfinite(kp).all(axis=2)  # (T, K)
    centroid = np.where(present[..., None], kp, 0.0).sum(axis=1) / np.maximum(present.sum(axis=1), 1)[:, None]
    centroid[~present.any(axis=1)] = np.nan
    return centroid


def _heading(kp: np.ndarray, centroid: np.ndarray, names: tuple[str, ...], config: FeatureConfig) -> np.ndarray:
    """Body heading per frame ``(T,)``: from the ``heading`` keypoints, or the principal axis signed
    towards ``heading_reference``; zeros when not egocentric (or fewer than 2 keypoints)."""
    if not config.egocentric or kp.shape[1] < 2:
        return np.zeros(len(kp))
    if config.heading is not None:
        missing = [h for h in config.heading if h not in names]
        if missing:
            raise FommError(f"heading keypoint '{missing[0]}' is not one of {list(names)}")
        axis = kp[:, names.index(config.heading[1])] - kp[:, names.index(config.heading[0])]
        return np.arctan2(axis[:, 1], axis[:, 0])
    if config.heading_reference is None:
        raise FommError("internal: heading_reference must be resolved before computing signals")
    if config.heading_reference not in names:
        raise FommError(f"heading_reference '{config.heading_reference}' is not one of {list(names)}")
    return principal_heading(kp, centroid, names.index(config.heading_reference))


def _keypoint_signals(sig: SubjectSignals, names: tuple[str, ...], clock: _Clock, heading: np.ndarray,
                      config: FeatureConfig) -> None:
    """Speed, egocentric velocity, acceleration, jerk and pose of each keypoint; centroid motion."""
    kp, k = sig.positions, sig.positions.shape[1]
    v, a, j = grouped_derivatives(kp, clock.dt, clock.window)
    pose_v = clock.rate(sig.pose)
    speed = np.linalg.norm(v, axis=-1)
    for i, name in enumerate(names):
        sig.add(f"{name}.speed", speed[:, i], ("mean", "std", "max"))
        sig.add(f"{name}.vx", pose_v[:, i, 0], ("mean", "std"))
        sig.add(f"{name}.vy", pose_v[:, i, 1], ("mean", "std"))
        sig.add(f"{name}.accel", np.linalg.norm(a[:, i], axis=-1), ("mean", "max"))
        sig.add(f"{name}.jerk", np.linalg.norm(j[:, i], axis=-1), ("mean",))
        if k >= 2:
            sig.add(f"{name}.x", sig.pose[:, i, 0], ("mean", "std"))
            sig.add(f"{name}.y", sig.pose[:, i, 1], ("mean", "std"))
    cv = derivatives(sig.centroid, clock.dt, clock.window, order=1)[0]
    sig.add("centroid.speed", np.linalg.norm(cv, axis=-1), ("mean", "std", "max"))
    if config.egocentric and k >= 2:
        body_v = rotate(cv, heading)
        sig.add("centroid.forward", body_v[:, 0], ("mean", "std"))
        sig.add("centroid.lateral", body_v[:, 1], ("mean", "std"))
        turn = derivatives(unwrap_runs(heading[:, None]), clock.dt, clock.window, order=1)[0][:, 0]
        sig.add("heading.angvel", turn, ("mean", "absmean"))


def _pairwise_signals(sig: SubjectSignals, names: tuple[str, ...], clock: _Clock, heading: np.ndarray) -> None:
    """Distance, its rate, the egocentric angle and its angular velocity of every keypoint pair."""
    kp = sig.positions
    ii, jj = np.triu_indices(kp.shape[1], 1)
    diff = kp[:, jj] - kp[:, ii]  # (T, P, 2)
    dist = np.linalg.norm(diff, axis=-1)
    rate = clock.rate(dist[..., None])[..., 0]
    world_angle = np.arctan2(diff[..., 1], diff[..., 0])
    angvel = clock.rate(unwrap_runs(world_angle)[..., None])[..., 0]
    ego_angle = world_angle - heading[:, None]
    for p, (a, b) in enumerate(zip(ii, jj)):
        pair = f"{names[a]}-{names[b]}"
        sig.add(f"{pair}.dist", dist[:, p], ("mean", "std"))
        sig.add(f"{pair}.dist_rate", rate[:, p], ("mean", "absmean"))
        sig.add(f"{pair}.angle_cos", np.cos(ego_angle[:, p]), ("mean",))
        sig.add(f"{pair}.angle_sin", np.sin(ego_angle[:, p]), ("mean",))
        sig.add(f"{pair}.angvel", angvel[:, p], ("mean", "absmean"))


def _jacobian_signals(sig: SubjectSignals, names: tuple[str, ...], jac: np.ndarray, fs: float) -> None:
    """Local rotation and scale rates of each keypoint from consecutive jacobians ``J_{t+1} J_t⁻¹``."""
    k = jac.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        det = jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]
        inv = np.stack(
            [np.stack([jac[..., 1, 1], -jac[..., 0, 1]], -1), np.stack([-jac[..., 1, 0], jac[..., 0, 0]], -1)], -2
        ) / det[..., None, None]
        rel = np.einsum("tkij,tkjl->tkil", jac[1:], inv[:-1])
        rot = np.arctan2(rel[..., 1, 0] - rel[..., 0, 1], rel[..., 0, 0] + rel[..., 1, 1]) * fs
        scale = 0.5 * np.log(np.abs(rel[..., 0, 0] * rel[..., 1, 1] - rel[..., 0, 1] * rel[..., 1, 0])) * fs
    rot = np.concatenate([rot, np.full((1, k), np.nan)])
    scale = np.concatenate([scale, np.full((1, k), np.nan)])
    for i, name in enumerate(names):
        sig.add(f"{name}.rot_rate", rot[:, i], ("mean", "absmean"))
        sig.add(f"{name}.scale_rate", scale[:, i], ("mean", "absmean"))


def subject_signals(kp: np.ndarray, scores: np.ndarray, jac: np.ndarray | None, names: tuple[str, ...],
                    config: FeatureConfig, fs: float) -> SubjectSignals:
    """Per-frame signals of one subject: ``kp (T, K, 2)``, ``scores (T, K)``, ``jac (T, K, 2, 2)`` or None."""
    centroid = _centroid(kp)
    heading = _heading(kp, centroid, names, config)
    sig = SubjectSignals(kp, centroid, rotate(kp - centroid[:, None], heading))  # pose: egocentric or centred
    clock = _Clock.of(fs, config)
    _keypoint_signals(sig, names, clock, heading, config)
    if config.pairwise and kp.shape[1] >= 2:
        _pairwise_signals(sig, names, clock, heading)
    if config.jacobians and jac is not None:
        _jacobian_signals(sig, names, jac, fs)
    if config.confidence:
        missing = ~np.isfinite(kp).all(axis=-1)
        for i, name in enumerate(names):
            sig.add(f"{name}.score", np.where(missing[:, i], np.nan, scores[:, i]), ("mean", "min"))
            sig.add(f"{name}.missing", missing[:, i].astype(np.float64), ("mean",))
    return sig


class Prepared(NamedTuple):
    """Tracks on a regular frame grid, short gaps interpolated: ``keypoints`` ``(T, N, K, 2)``,
    ``scores`` ``(T, N, K)``, ``jacobians`` or None, ``grid`` frame indices ``(T,)``, ``step`` frames
    per row and ``fs`` rows per second."""

    keypoints: np.ndarray
    scores: np.ndarray
    jacobians: np.ndarray | None
    grid: np.ndarray
    step: int
    fs: float


def prepare(tracks: Tracks, config: FeatureConfig) -> Prepared:
    """Keypoints, scores and jacobians on a regular grid with low scores masked and short gaps interpolated."""
    grid, step, row = regular_grid(tracks)
    fs = tracks.fps / step
    kp = on_grid(tracks.keypoints, row, np.nan)
    scores = on_grid(tracks.scores, row, 0.0)
    kp[scores < config.min_score] = np.nan
    kp[np.isnan(kp).any(axis=-1)] = np.nan
    max_gap = int(round(config.max_gap_seconds * fs))
    kp = interpolate_gaps(kp, max_gap)
    jac = None
    if config.jacobians and tracks.jacobians is not None:
        jac = on_grid(tracks.jacobians, row, np.nan)
        jac[np.isnan(kp).any(axis=-1)] = np.nan
        jac = interpolate_gaps(jac, max_gap)
    return Prepared(kp, scores, jac, grid, step, fs)


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


def frame_signals(tracks: Tracks, config: FeatureConfig | None = None) -> FrameSignals:
    """Per-frame pose and motion signals (egocentric positions, velocities, speeds, centroid motion).

    The compact input of temporal models: ``values (T, C)`` on the regular frame grid, NaN where
    missing. Columns per subject: ``<kp>.x, <kp>.y`` (pose), ``<kp>.vx, <kp>.vy``, ``<kp>.speed``,
    ``centroid.speed`` (+ forward, lateral, heading angular velocity when egocentric).
    """
    config = resolve_config(tracks, config)
    kp, scores, _, grid, step, fs = prepare(tracks, config)
    keep_suffixes = (".x", ".y", ".vx", ".vy", ".speed", ".forward", ".lateral", ".angvel")
    columns, names = [], []
    multi = tracks.num_subjects > 1
    lean = replace(config, pairwise=False, jacobians=False, confidence=False)
    for n, subject in enumerate(tracks.subject_names):
        sig = subject_signals(kp[:, n], scores[:, n], None, tracks.keypoint_names, lean, fs)
        for name, col in zip(sig.names, sig.columns):
            if name.endswith(keep_suffixes):
                columns.append(col)
                names.append(f"{subject}.{name}" if multi else name)
    return FrameSignals(np.stack(columns, axis=1).astype(np.float32), tuple(names), grid, fs, step)
