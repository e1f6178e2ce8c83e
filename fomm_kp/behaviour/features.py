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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import pandas as pd

from fomm_kp.behaviour.frequency import wavelet_frequencies, wavelet_spectrogram, welch_window_features
from fomm_kp.behaviour.signals import SubjectSignals, prepare, resolve_config, subject_signals
from fomm_kp.behaviour.windows import FeatureConfig, displacement, window_bounds, window_stats
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.tracks import Tracks, load_tracks

__all__ = ["Features", "Source", "motion_features", "save_features", "load_features", "is_features_file", "load_features_or_tracks"]

log = logging.getLogger(__name__)


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

    def has_data(self) -> np.ndarray:
        """bool ``(W,)``: windows with some finite value among the columns that do not merely count
        missing points (``.missing.``): a window where every keypoint is missing has none."""
        measured = np.array([".missing." not in name for name in self.names], dtype=bool)
        return np.isfinite(self.values[:, measured]).any(axis=1)

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


# --------------------------------------------------------------------------------------------
# Per-frame preparation
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


class _Table:
    """Columns of a features table as they are computed: blocks ``(W, n)`` and their names."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.names: list[str] = []

    def add(self, block: np.ndarray, names: list[str]) -> None:
        self.blocks.append(block)
        self.names += names


def _window_features(table: _Table, sig: SubjectSignals, window: tuple[np.ndarray, np.ndarray], tag: str,
                     prefix: str, keypoints: tuple[str, ...]) -> None:
    """Statistics of each signal, displacements and the centroid's path straightness over one window length."""
    a, b = window
    matrix = np.stack(sig.columns, axis=1) if sig.columns else np.zeros((len(sig.centroid), 0))
    by_stat: dict[str, list[int]] = {}
    for c, stats in enumerate(sig.stats):
        for s in stats:
            by_stat.setdefault(s, []).append(c)
    for s, cols in by_stat.items():
        table.add(window_stats(matrix[:, cols], a, b, s), [f"{prefix}{sig.names[c]}.{s}{tag}" for c in cols])
    table.add(displacement(sig.positions, a, b), [f"{prefix}{name}.displacement{tag}" for name in keypoints])
    disp = displacement(sig.centroid[:, None], a, b)[:, 0]
    # path length: the b - a - 1 steps inside the window (mean valid step times their number)
    steps = np.concatenate([[np.nan], np.linalg.norm(np.diff(sig.centroid, axis=0), axis=-1)])[:, None]
    path_len = window_stats(steps, np.minimum(a + 1, b - 1), b, "mean")[:, 0] * (b - a - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        straight = np.where(path_len > 1e-6, disp / path_len, np.nan)
    table.add(np.stack([disp, np.clip(straight, 0.0, 1.0)], axis=1),
              [f"{prefix}centroid.displacement{tag}", f"{prefix}centroid.straightness{tag}"])


def _spectral_features(table: _Table, sig: SubjectSignals, window: tuple[np.ndarray, np.ndarray], tag: str,
                       prefix: str, keypoints: tuple[str, ...], config: FeatureConfig, fs: float) -> None:
    """Welch band powers, dominant frequency and spectral entropy of the egocentric pose of each
    keypoint and of the centroid in image coordinates, over one window length."""
    k = len(keypoints)
    pose = sig.pose.reshape(len(sig.pose), -1)
    spectral = np.concatenate([pose, sig.centroid], axis=1) if k >= 2 else sig.centroid
    parts = list(keypoints) + ["centroid"] if k >= 2 else ["centroid"]
    values, stat_names = welch_window_features(spectral, fs, *window, config.bands_hz, np.repeat(np.arange(len(parts)), 2))
    table.add(values, [f"{prefix}{name}.{s}{tag}" for name in parts for s in stat_names])


def _wavelet_amplitudes(sig: SubjectSignals, freqs: np.ndarray, fs: float) -> np.ndarray:
    """log10 Morlet amplitudes of each keypoint's pose (x and y summed) per frame: ``(T, F * K)``."""
    t, k = sig.pose.shape[:2]
    spec = wavelet_spectrogram(sig.pose.reshape(t, -1), fs, freqs)  # (T, F, K*2)
    spec = spec.reshape(t, len(freqs), k, 2).sum(axis=-1)  # (T, F, K)
    return np.log10(spec + 1e-3).reshape(t, -1)


Source = Union[Tracks, Features]  # what classifiers take: tracks (features computed) or a feature table


MOSTLY_MISSING = 0.5  # warn when more than this share of keypoint positions is missing


def check_usable(tracks: Tracks) -> None:
    """Refuse tracks without frames, with every keypoint missing, or from a variable-frame-rate video
    (windows and rates assume a constant one); warn when most keypoints are missing."""
    name = tracks.video or "these tracks"
    if tracks.num_frames == 0:
        raise FommError(f"{name}: no frames")
    if tracks.variable_rate:
        gaps = np.diff(tracks.times) / np.maximum(np.diff(tracks.frame_indices), 1)
        raise FommError(f"{name} comes from a variable-frame-rate video (frame intervals {gaps.min():.3f}-"
                        f"{gaps.max():.3f} s): behaviour features need a constant rate; re-encode it at one "
                        "(ffmpeg -i IN -fps_mode cfr OUT) and track it again")
    missing = float(np.isnan(tracks.keypoints).any(axis=-1).mean())
    if missing == 1.0:
        raise FommError(f"{name}: every keypoint is missing in every frame (all NaN): no motion to measure")
    if missing > MOSTLY_MISSING:
        log.warning("%s: %.0f%% of keypoint positions are missing; windows without any are left out", name,
                    100 * missing)


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
    check_usable(tracks)
    config = resolve_config(tracks, config)
    if tracks.fps <= 0 or not np.isfinite(tracks.fps):
        raise FommError(f"tracks need a positive fps, got {tracks.fps}")
    prepared = prepare(tracks, config)
    fs, names = prepared.fs, tracks.keypoint_names
    bounds = window_bounds(len(prepared.grid), fs, config)
    freqs = wavelet_frequencies(*config.wavelet_range_hz, config.wavelet_num_freqs, fs) if config.wavelet_num_freqs else None
    table = _Table()
    for n, subject in enumerate(tracks.subject_names):
        prefix = f"{subject}." if tracks.num_subjects > 1 else ""
        jacobians = None if prepared.jacobians is None else prepared.jacobians[:, n]
        sig = subject_signals(prepared.keypoints[:, n], prepared.scores[:, n], jacobians, names, config, fs)
        spec = None if freqs is None else _wavelet_amplitudes(sig, freqs, fs)
        for window, seconds in zip(bounds, config.window_seconds):
            tag = f"@{seconds:g}s"
            _window_features(table, sig, window, tag, prefix, names)
            if config.bands_hz:
                _spectral_features(table, sig, window, tag, prefix, names, config, fs)
            if spec is not None:
                table.add(window_stats(spec, *window, "mean"),
                          [f"{prefix}{name}.wavelet[{f:.3g}Hz]{tag}" for f in freqs for name in names])
    a0, b0 = bounds[0]
    return Features(values=np.concatenate(table.blocks, axis=1).astype(np.float32), names=tuple(table.names),
                    start_frames=prepared.grid[a0], end_frames=prepared.grid[b0 - 1] + prepared.step, fps=tracks.fps,
                    video=tracks.video, config=config.to_dict())


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
    except (KeyError, ValueError, OSError, EOFError, TypeError, AttributeError) as exc:
        raise FommError(f"{path} is not a fomm_kp features file: {exc}") from exc


def is_features_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a features ``.npz`` written by :func:`save_features` (else: tracks)."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return "kind" in data and str(data["kind"]) == "fomm_kp.features"
    except (ValueError, OSError, EOFError):
        return False


def load_features_or_tracks(path: str | os.PathLike) -> Features | Tracks:
    """Features from a features file, else the tracks of a tracks file."""
    return load_features(path) if is_features_file(path) else load_tracks(path)
