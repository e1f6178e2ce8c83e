"""Pictures of behaviour: ethograms, time budgets, group box plots, confusion matrices and wavelet
spectrograms (PNG, matplotlib's Agg backend, imported when a picture is drawn)."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from fomm_kp.behaviour.frame_labels import FrameLabels, bouts
from fomm_kp.behaviour.frequency import wavelet_frequencies, wavelet_spectrogram
from fomm_kp.behaviour.score import VideoScore
from fomm_kp.behaviour.signals import prepare, resolve_config, subject_signals
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.tracks import Tracks

__all__ = ["plot_ethogram", "plot_time_budget", "plot_group_boxes", "plot_confusion", "plot_spectrogram",
           "plot_keypoint_spectrogram"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(n: int) -> list:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _save(fig: Any, path: Path, tight: bool = True) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    options = {"bbox_inches": "tight"} if tight else {}
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", **options), suffix=".png")
    _pyplot().close(fig)
    return path


def plot_ethogram(result: FrameLabels, path: str | os.PathLike, title: str = "") -> Path:
    """PNG: one row per behaviour with its bouts over time, and the class probabilities below."""
    plt = _pyplot()
    classes = result.classes
    colours = _colours(len(classes))
    times = result.frame_indices / result.fps
    step = 1.0 / result.fps
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 1.2 + 0.45 * len(classes) + 1.6), sharex=True,
                                  gridspec_kw={"height_ratios": [max(len(classes), 1) * 0.45, 1.6]})
    for lab, a, b in bouts(result.labels):
        if lab < 0:
            continue
        ax.broken_barh([(times[a], times[b - 1] - times[a] + step)], (lab - 0.4, 0.8), color=colours[lab])
    ax.set_yticks(range(len(classes)), labels=classes, fontsize=8)
    ax.set_ylim(len(classes) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"ethogram: {Path(result.video).name or 'video'}", fontsize=10)
    for c in range(len(classes)):
        ax2.plot(times, result.probabilities[:, c], color=colours[c], lw=1)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("probability", fontsize=8)
    ax2.set_xlabel("time (s)")
    return _save(fig, Path(path))


def plot_time_budget(scores: Sequence[VideoScore], path: str | os.PathLike) -> Path:
    """PNG: one stacked bar per video with the fraction of time in each behaviour."""
    plt = _pyplot()
    classes = scores[0].classes
    colours = _colours(len(classes))
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(scores) + 3), 4))
    bottom = np.zeros(len(scores))
    for c, name in enumerate(classes):
        vals = np.array([np.nan_to_num(s.behaviours[name].time_fraction) for s in scores])
        ax.bar(range(len(scores)), vals, bottom=bottom, color=colours[c], label=name)
        bottom += vals
    ax.set_xticks(range(len(scores)), labels=[s.name for s in scores], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("fraction of time")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title("time budget per video", fontsize=10)
    return _save(fig, Path(path))


def plot_group_boxes(scores: Sequence[VideoScore], groups: Mapping[str, str], path: str | os.PathLike, metric: str = "time_fraction") -> Path:
    """PNG: per behaviour, a box per group of ``metric`` with the videos as dots."""
    plt = _pyplot()
    classes = scores[0].classes
    names = sorted({groups[s.name] for s in scores})
    cols = min(4, len(classes))
    rows = math.ceil(len(classes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.6 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    for i, behaviour in enumerate(classes):
        ax = axes[i // cols, i % cols]
        data = [[getattr(s.behaviours[behaviour], metric) for s in scores if groups[s.name] == g] for g in names]
        data = [[v for v in d if np.isfinite(v)] for d in data]
        ax.boxplot(data, tick_labels=names, widths=0.5, showfliers=False)
        for j, d in enumerate(data):
            ax.scatter(j + 1 + rng.uniform(-0.08, 0.08, len(d)), d, s=12, color="k", alpha=0.7, zorder=3)
        ax.set_title(behaviour, fontsize=9)
        ax.tick_params(labelsize=7)
    for j in range(len(classes), rows * cols):
        axes[j // cols, j % cols].axis("off")
    fig.suptitle(f"{metric} by group", fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(path))


def plot_spectrogram(
    power: np.ndarray,
    freqs: np.ndarray,
    frame_indices: np.ndarray,
    fps: float,
    names: Sequence[str],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """Write a PNG with one log-amplitude wavelet spectrogram panel per signal.

    Args:
        power: ``(T, F, C)`` amplitudes from :func:`wavelet_spectrogram`.
        freqs: ``(F,)`` Hz; frame_indices: ``(T,)``; names: C panel titles.
    """
    plt = _pyplot()
    power = np.asarray(power)
    if power.ndim != 3 or power.shape[1] != len(freqs) or power.shape[2] != len(names):
        raise FommError(f"spectrogram shape {power.shape} does not match {len(freqs)} frequencies and {len(names)} names")
    c = power.shape[2]
    times = np.asarray(frame_indices, dtype=np.float64) / fps
    fig, axes = plt.subplots(c, 1, figsize=(10, 1.2 + 1.3 * c), sharex=True, squeeze=False)
    logp = np.log10(power + 1e-6)
    # colour limits from panels that move at all (a keypoint fixed in the body frame is ~0 everywhere)
    live = logp[:, :, np.nanmax(power, axis=(0, 1)) > 1e-3] if c else logp
    finite = live[np.isfinite(live)]
    vmin, vmax = (np.percentile(finite, 2), np.percentile(finite, 99.5)) if finite.size else (-6.0, 0.0)
    ticks = [f for f in (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64) if freqs.min() <= f <= freqs.max()]
    for j in range(c):
        ax = axes[j, 0]
        mesh = ax.pcolormesh(times, freqs, logp[:, :, j].T, shading="nearest", cmap="magma", vmin=vmin, vmax=vmax)
        ax.set_yscale("log")
        ax.set_yticks(ticks, labels=[f"{f:g}" for f in ticks])
        ax.minorticks_off()
        ax.set_ylabel(f"{names[j]}\nHz", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    fig.colorbar(mesh, ax=axes[:, 0].tolist(), label="log10 amplitude (px)", shrink=0.8)
    if title:
        axes[0, 0].set_title(title, fontsize=10)
    return _save(fig, Path(path), tight=False)


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: str | os.PathLike, title: str = "") -> Path:
    """PNG of a row-normalised confusion matrix (row = true class) with the counts written in."""
    plt = _pyplot()
    confusion = np.asarray(confusion, dtype=np.float64)
    n = len(classes)
    if confusion.shape != (n, n):
        raise FommError(f"confusion matrix {confusion.shape} does not match {n} classes")
    rows = confusion.sum(axis=1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels=classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if confusion[i, j]:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(path), tight=False)


def plot_keypoint_spectrogram(
    tracks: Tracks, path: str | os.PathLike, config: FeatureConfig | None = None, subject: int = 0, num_freqs: int = 24
) -> Path:
    """PNG of Morlet wavelet amplitudes: the centroid (image coordinates) and each keypoint's
    egocentric position, x and y amplitudes summed, over ``config.wavelet_range_hz``."""
    config = resolve_config(tracks, config)
    if not 0 <= subject < tracks.num_subjects:
        raise FommError(f"subject {subject} out of range ({tracks.num_subjects} subjects)")
    kp, scores, _, grid, step, fs = prepare(tracks, config)
    sig = subject_signals(kp[:, subject], scores[:, subject], None, tracks.keypoint_names,
                          replace(config, pairwise=False, confidence=False), fs)
    parts = [sig.centroid[:, None, :]]
    names = ["centroid"]
    if tracks.num_keypoints >= 2:
        parts.append(sig.pose)
        names += [f"{n} (ego)" if config.egocentric else n for n in tracks.keypoint_names]
    signals = np.concatenate(parts, axis=1)  # (T, 1 + K, 2)
    freqs = wavelet_frequencies(*config.wavelet_range_hz, num_freqs, fs)
    amp = wavelet_spectrogram(signals.reshape(len(grid), -1), fs, freqs)
    amp = amp.reshape(len(grid), len(freqs), len(names), 2).sum(axis=-1)
    title = f"Morlet wavelet amplitude: {Path(tracks.video).name or 'tracks'} ({tracks.subject_names[subject]})"
    return plot_spectrogram(amp, freqs, grid, tracks.fps, names, path, title=title)
