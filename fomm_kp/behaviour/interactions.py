"""Interactions between subjects of one video: per pair, per frame and over windows; graphs per window.

For each pair of subjects (i, j), on the regular frame grid of :func:`~fomm_kp.behaviour.signals.prepare`
(short gaps interpolated):

- ``centroid_distance``: distance between the centroids of their keypoints (px);
- ``keypoint_distances``: every keypoint of i to every keypoint of j ``(K, K)`` (px), and their
  minimum, ``nearest_distance`` (how close the two bodies come);
- ``relative_heading``: j's heading minus i's, wrapped to (−π, π] (0: same way, ±π: opposite);
  headings are the body axes of :mod:`~fomm_kp.behaviour.signals` (``FeatureConfig.heading``
  keypoints, or the principal axis signed towards one keypoint, resolved once for both subjects);
- ``approach_speed``: how fast the centroid distance shrinks (px/s; negative: moving apart);
- ``facing``: ``(2,)`` the angle between i's heading and the direction from i to j, and the same for
  j (rad, 0: facing the other, π: turned away);
- ``contact``: the bodies are in contact, ``nearest_distance`` at most ``contact_distance`` (px;
  default: ``contact_fraction`` × the subjects' median body length, the largest distance between
  two of a subject's keypoints).

:func:`interaction_features` summarises them over the windows of
:func:`~fomm_kp.behaviour.windows.window_bounds` as a :class:`~fomm_kp.behaviour.features.Features`
table (``<i>~<j>.<quantity>.<stat>@<window>s``; ``contact.seconds`` is the contact time), and
:func:`interaction_graphs` gives one graph per window of the first length: nodes = subjects (mean
centroid and speed), edges = pairs with these features, in networkx's node-link layout
(``networkx.node_link_graph(graph, edges="edges")``), written as one JSON file by
:func:`save_interaction_graphs`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fomm_kp.behaviour.features import Features
from fomm_kp.behaviour.signals import prepare, resolve_config
from fomm_kp.behaviour.timeseries import derivatives, principal_heading
from fomm_kp.behaviour.windows import FeatureConfig, window_bounds, window_stats
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.settings import check, number
from fomm_kp.tracks import Tracks

__all__ = ["InteractionConfig", "PairSignals", "Interactions", "interaction_signals", "interaction_features",
           "interaction_graphs", "save_interaction_graphs"]

GRAPH_FORMAT = "fomm_kp.interaction_graphs/1"


@dataclass(frozen=True)
class InteractionConfig:
    """``contact_distance`` in pixels (0: ``contact_fraction`` × the median body length)."""

    contact_distance: float = 0.0
    contact_fraction: float = 0.25

    def __post_init__(self) -> None:
        check(self, contact_distance=number(0.0), contact_fraction=number(above=0.0))


class PairSignals(NamedTuple):
    """Per-frame interaction signals of subjects ``first`` < ``second`` (see the module docstring);
    arrays have T rows on the regular grid, NaN where either subject is missing."""

    first: int
    second: int
    centroid_distance: np.ndarray
    keypoint_distances: np.ndarray
    nearest_distance: np.ndarray
    relative_heading: np.ndarray
    approach_speed: np.ndarray
    facing: np.ndarray
    contact: np.ndarray


class Interactions(NamedTuple):
    """The pairs of a Tracks: ``grid`` frame indices ``(T,)``, ``step`` frames per row, ``fs`` rows per
    second, ``subject_names``, per-subject ``centroids`` ``(T, N, 2)`` and ``speeds`` ``(T, N)`` (px/s),
    ``pairs`` (one :class:`PairSignals` per unordered pair) and the ``contact_distance`` used (px)."""

    grid: np.ndarray
    step: int
    fs: float
    subject_names: tuple[str, ...]
    centroids: np.ndarray
    speeds: np.ndarray
    pairs: list[PairSignals]
    contact_distance: float


def _wrap(angle: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * angle))


def _centroids(kp: np.ndarray) -> np.ndarray:
    """``(T, N, K, 2)`` → ``(T, N, 2)`` mean of the present keypoints (NaN when none)."""
    present = np.isfinite(kp).all(axis=-1)
    total = np.where(present[..., None], kp, 0.0).sum(axis=2)
    count = present.sum(axis=2)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _headings(kp: np.ndarray, centroids: np.ndarray, names: tuple[str, ...], config: FeatureConfig) -> np.ndarray:
    """Body heading of each subject ``(T, N)`` (radians), as the egocentric features define it."""
    if len(names) < 2:
        return np.full(kp.shape[:2], np.nan)
    if config.heading is not None:
        axis = kp[:, :, names.index(config.heading[1])] - kp[:, :, names.index(config.heading[0])]
        return np.arctan2(axis[..., 1], axis[..., 0])
    reference = names.index(config.heading_reference)
    return np.stack([principal_heading(kp[:, n], centroids[:, n], reference) for n in range(kp.shape[1])], axis=1)


def _body_length(kp: np.ndarray) -> float:
    """Median over frames and subjects of the largest distance between two keypoints of one subject."""
    spans = np.linalg.norm(kp[:, :, :, None] - kp[:, :, None, :], axis=-1)
    with np.errstate(invalid="ignore"):
        largest = np.where(np.isfinite(spans).any(axis=(2, 3)), np.nanmax(np.where(np.isfinite(spans), spans, -1.0),
                                                                           axis=(2, 3)), np.nan)
    largest = largest[np.isfinite(largest) & (largest > 0)]
    return float(np.median(largest)) if largest.size else float("nan")


def _pair(kp: np.ndarray, centroids: np.ndarray, headings: np.ndarray, i: int, j: int, fs: float,
          derivative_rows: int, contact: float) -> PairSignals:
    offset = centroids[:, j] - centroids[:, i]
    distance = np.linalg.norm(offset, axis=-1)
    pairwise = np.linalg.norm(kp[:, i, :, None] - kp[:, j, None, :], axis=-1)  # (T, K, K)
    finite = np.isfinite(pairwise)
    nearest = np.where(finite.any(axis=(1, 2)), np.where(finite, pairwise, np.inf).min(axis=(1, 2)), np.nan)
    rate = derivatives(distance[:, None], 1.0 / fs, derivative_rows, order=1)[0][:, 0]
    towards = np.arctan2(offset[:, 1], offset[:, 0])
    facing = np.abs(np.stack([_wrap(towards - headings[:, i]), _wrap(towards + np.pi - headings[:, j])], axis=1))
    with np.errstate(invalid="ignore"):
        touching = np.where(np.isfinite(nearest), (nearest <= contact).astype(np.float64), np.nan)
    return PairSignals(i, j, distance, pairwise, nearest, _wrap(headings[:, j] - headings[:, i]), -rate, facing,
                       touching)


def _check(tracks: Tracks) -> None:
    if not isinstance(tracks, Tracks):
        raise FommError(f"interactions need Tracks, got {type(tracks).__name__}")
    if tracks.num_subjects < 2:
        raise FommError(f"interactions need two or more subjects; these tracks hold {tracks.num_subjects}")
    if tracks.fps <= 0 or not np.isfinite(tracks.fps):
        raise FommError(f"tracks need a positive fps, got {tracks.fps}")


def interaction_signals(tracks: Tracks, config: FeatureConfig | None = None,
                        options: InteractionConfig = InteractionConfig()) -> Interactions:
    """Per-frame interaction signals of every pair of subjects of ``tracks`` (at least two)."""
    _check(tracks)
    config = resolve_config(tracks, config or FeatureConfig(egocentric=True))
    prepared = prepare(tracks, config)
    kp, fs, names = prepared.keypoints, prepared.fs, tracks.keypoint_names
    centroids = _centroids(kp)
    headings = _headings(kp, centroids, names, config)
    contact = options.contact_distance or options.contact_fraction * _body_length(kp)
    rows = max(5, int(round(config.derivative_seconds * fs)) | 1)
    velocity = derivatives(centroids.reshape(len(kp), -1), 1.0 / fs, rows, order=1)[0].reshape(centroids.shape)
    pairs = [_pair(kp, centroids, headings, i, j, fs, rows, contact)
             for i, j in combinations(range(tracks.num_subjects), 2)]
    return Interactions(prepared.grid, prepared.step, fs, tracks.subject_names, centroids,
                        np.linalg.norm(velocity, axis=-1), pairs, float(contact))


_STATS = (("centroid_distance", ("mean", "min")), ("nearest_distance", ("mean", "min")),
          ("relative_heading", ("absmean",)), ("approach_speed", ("mean",)))


def _pair_table(pair: PairSignals, window: tuple[np.ndarray, np.ndarray], tag: str, prefix: str, fs: float,
                ) -> tuple[list[np.ndarray], list[str]]:
    blocks, names = [], []
    for quantity, stats in _STATS:
        for stat in stats:
            blocks.append(window_stats(getattr(pair, quantity)[:, None], *window, stat))
            names.append(f"{prefix}.{quantity}.{stat}{tag}")
    blocks.append(window_stats(pair.facing, *window, "mean"))
    names += [f"{prefix}.facing_first.mean{tag}", f"{prefix}.facing_second.mean{tag}"]
    fraction = window_stats(pair.contact[:, None], *window, "mean")
    blocks += [fraction, fraction * (window[1] - window[0])[:, None] / fs]
    names += [f"{prefix}.contact.fraction{tag}", f"{prefix}.contact.seconds{tag}"]
    return blocks, names


def _features(signals: Interactions, config: FeatureConfig, tracks: Tracks) -> Features:
    bounds = window_bounds(len(signals.grid), signals.fs, config)
    blocks, names = [], []
    for pair in signals.pairs:
        prefix = f"{signals.subject_names[pair.first]}~{signals.subject_names[pair.second]}"
        for window, seconds in zip(bounds, config.window_seconds):
            b, n = _pair_table(pair, window, f"@{seconds:g}s", prefix, signals.fs)
            blocks += b
            names += n
    a0, b0 = bounds[0]
    return Features(values=np.concatenate(blocks, axis=1).astype(np.float32), names=tuple(names),
                    start_frames=signals.grid[a0], end_frames=signals.grid[b0 - 1] + signals.step, fps=tracks.fps,
                    video=tracks.video, config={**config.to_dict(), "contact_distance": signals.contact_distance})


def interaction_features(tracks: Tracks, config: FeatureConfig | None = None,
                         options: InteractionConfig = InteractionConfig()) -> Features:
    """Window statistics of every pair's interaction signals (see the module docstring)."""
    _check(tracks)
    config = resolve_config(tracks, config or FeatureConfig())
    return _features(interaction_signals(tracks, config, options), config, tracks)


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def interaction_graphs(tracks: Tracks, config: FeatureConfig | None = None,
                       options: InteractionConfig = InteractionConfig()) -> list[dict[str, Any]]:
    """One graph per window of the first length, in networkx's node-link layout: nodes are the
    subjects (mean centroid ``x``, ``y`` and ``speed``), edges the pairs with their window
    features (``<quantity>.<stat>``); NaN becomes null."""
    _check(tracks)
    config = resolve_config(tracks, config or FeatureConfig())
    signals = interaction_signals(tracks, config, options)
    table = _features(signals, config, tracks)
    a, b = window_bounds(len(signals.grid), signals.fs, config)[0]
    tag = f"@{config.window_seconds[0]:g}s"
    centre = [window_stats(signals.centroids[..., d], a, b, "mean") for d in (0, 1)]
    speed = window_stats(signals.speeds, a, b, "mean")
    graphs = []
    for w in range(len(a)):
        nodes = [{"id": name, "x": _number(centre[0][w, n]), "y": _number(centre[1][w, n]),
                  "speed": _number(speed[w, n])} for n, name in enumerate(signals.subject_names)]
        edges = []
        for pair in signals.pairs:
            source, target = signals.subject_names[pair.first], signals.subject_names[pair.second]
            prefix = f"{source}~{target}."
            edge = {"source": source, "target": target}
            edge.update({name[len(prefix):-len(tag)]: _number(table.values[w, c]) for c, name in enumerate(table.names)
                         if name.startswith(prefix) and name.endswith(tag)})
            edges.append(edge)
        graphs.append({"directed": False, "multigraph": False,
                       "graph": {"start_frame": int(table.start_frames[w]), "end_frame": int(table.end_frames[w]),
                                 "fps": float(tracks.fps)},
                       "nodes": nodes, "edges": edges})
    return graphs


def save_interaction_graphs(graphs: list[dict[str, Any]], path: str | os.PathLike, video: str = "") -> Path:
    """Write graphs of :func:`interaction_graphs` as one JSON file (atomically):
    ``{"format", "video", "windows": [node-link graph, ...]}``."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise FommError(f"interaction graphs are written as .json, got {path}")
    text = json.dumps({"format": GRAPH_FORMAT, "video": video, "windows": graphs}, allow_nan=False)
    return atomic_write(path, lambda tmp: tmp.write_text(text))
