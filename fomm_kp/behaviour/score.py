"""Study scoring: ethograms, time budgets, bouts, latencies, transitions and group comparisons.

``score(sources, classifier, out_dir)`` labels every video of a study (tracks files, per-frame
label CSVs, or videos with a detector checkpoint) and writes:

- ``report.csv``: one row per video and behaviour (time fraction, seconds, bouts, mean bout
  duration, latency to the first bout);
- ``report.json``: the same plus per-video transition counts and the group comparison;
- ``ethograms/<video>.png`` and ``per_frame/<video>.csv``; ``time_budget.png`` for all videos;
- with a groups file (``video,group``): ``groups.csv``, a Mann–Whitney U test per behaviour and
  metric for every pair of groups (rank-biserial effect size, Holm-adjusted p over behaviours),
  and ``groups_boxplot.png``.

Latency is measured from the first labelled frame of each video; a behaviour that never occurs
has latency NaN (empty in the CSV) and is left out of latency comparisons.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from fomm_kp.behaviour.classifiers import Classifier, FrameLabels, classify, fit_classifier, load_classifier, read_segments
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.tracks import Tracks, load_tracks

__all__ = [
    "METRICS",
    "BehaviourStats",
    "VideoScore",
    "bouts",
    "score_video",
    "compare_groups",
    "read_groups",
    "plot_ethogram",
    "plot_time_budget",
    "plot_group_boxes",
    "score_labels",
    "score",
    "behaviour_demo",
]

log = logging.getLogger(__name__)

METRICS = ("time_fraction", "bouts", "mean_bout_s", "latency_s")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")
TRACK_SUFFIXES = (".npz", ".h5", ".slp", ".nwb")


@dataclass(frozen=True)
class BehaviourStats:
    """Summary of one behaviour in one video (times in seconds)."""

    time_fraction: float
    time_s: float
    bouts: int
    mean_bout_s: float
    latency_s: float


@dataclass(frozen=True)
class VideoScore:
    """Everything measured for one video.

    Attributes:
        name: video name (file name without extension).
        behaviours: per class, its :class:`BehaviourStats`.
        transitions: ``(C, C)`` counts of bout-to-bout transitions (row = from), unknown skipped.
        frames: labelled frames; duration_s: their duration.
    """

    name: str
    behaviours: dict[str, BehaviourStats]
    transitions: np.ndarray
    classes: tuple[str, ...]
    frames: int
    duration_s: float


def bouts(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal labels ``(label, start_row, stop_row)`` (stop exclusive), unknown (-1) included."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    change = np.nonzero(np.diff(labels))[0] + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(labels)]])
    return [(int(labels[a]), int(a), int(b)) for a, b in zip(starts, stops)]


def score_video(result: FrameLabels, name: str | None = None) -> VideoScore:
    """Time budget, bouts, mean bout duration, latency and transitions of one video.

    Durations count frames: a bout of n frames lasts ``n / fps`` seconds. Rows of
    ``result.frame_indices`` are assumed consecutive frames (what :func:`classify` produces).
    """
    fps = result.fps
    classes = result.classes
    labels = result.labels
    runs = bouts(labels)
    known = labels >= 0
    n_known = int(known.sum())
    first = int(np.argmax(known)) if n_known else 0
    stats = {}
    for c, name_c in enumerate(classes):
        mine = [(a, b) for lab, a, b in runs if lab == c]
        frames_c = sum(b - a for a, b in mine)
        stats[name_c] = BehaviourStats(
            time_fraction=frames_c / n_known if n_known else math.nan,
            time_s=frames_c / fps,
            bouts=len(mine),
            mean_bout_s=(frames_c / len(mine)) / fps if mine else math.nan,
            latency_s=(mine[0][0] - first) / fps if mine else math.nan,
        )
    sequence = [lab for lab, _, _ in runs if lab >= 0]
    collapsed = [lab for i, lab in enumerate(sequence) if i == 0 or lab != sequence[i - 1]]
    transitions = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for a, b in zip(collapsed[:-1], collapsed[1:]):
        transitions[a, b] += 1
    return VideoScore(
        name=name or Path(result.video).stem or "video",
        behaviours=stats,
        transitions=transitions,
        classes=classes,
        frames=n_known,
        duration_s=n_known / fps,
    )


# --------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------


def read_groups(path: str | os.PathLike) -> dict[str, str]:
    """Read a ``video,group`` CSV into ``{video name without extension: group}``."""
    path = Path(path)
    if not path.is_file():
        raise FommError(f"groups file not found: {path}")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"video", "group"} <= set(reader.fieldnames):
            raise FommError(f"{path} must have columns video,group (has {reader.fieldnames})")
        groups = {Path(row["video"].strip()).stem: row["group"].strip() for row in reader}
    if not groups:
        raise FommError(f"{path} lists no videos")
    return groups


def _holm(pvalues: Sequence[float]) -> list[float]:
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(len(p), np.nan)
    ok = np.nonzero(np.isfinite(p))[0]
    order = ok[np.argsort(p[ok])]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def compare_groups(scores: Sequence[VideoScore], groups: Mapping[str, str]) -> list[dict]:
    """Mann–Whitney U per behaviour and metric for every pair of groups.

    Returns rows with ``behaviour, metric, group_a, group_b, n_a, n_b, median_a, median_b, U,
    p, p_holm, rank_biserial``; ``rank_biserial = 2U/(n_a n_b) − 1`` is positive when group a
    tends higher. ``p_holm`` adjusts over the behaviours of one metric and group pair.
    """
    from scipy.stats import mannwhitneyu

    missing = [s.name for s in scores if s.name not in groups]
    if missing:
        raise FommError(f"the groups file does not list {len(missing)} scored video(s), e.g. '{missing[0]}'")
    names = sorted({groups[s.name] for s in scores})
    if len(names) < 2:
        raise FommError(f"need at least 2 groups to compare, got {names}")
    classes = scores[0].classes
    rows: list[dict] = []
    for metric in METRICS:
        for i, ga in enumerate(names):
            for gb in names[i + 1 :]:
                block = []
                for behaviour in classes:
                    va = np.array([getattr(s.behaviours[behaviour], metric) for s in scores if groups[s.name] == ga], float)
                    vb = np.array([getattr(s.behaviours[behaviour], metric) for s in scores if groups[s.name] == gb], float)
                    va, vb = va[np.isfinite(va)], vb[np.isfinite(vb)]
                    row = {
                        "behaviour": behaviour, "metric": metric, "group_a": ga, "group_b": gb,
                        "n_a": int(len(va)), "n_b": int(len(vb)),
                        "median_a": float(np.median(va)) if len(va) else math.nan,
                        "median_b": float(np.median(vb)) if len(vb) else math.nan,
                        "U": math.nan, "p": math.nan, "rank_biserial": math.nan,
                    }
                    if len(va) and len(vb):
                        if np.ptp(np.concatenate([va, vb])) == 0:
                            row.update(U=len(va) * len(vb) / 2.0, p=1.0, rank_biserial=0.0)
                        else:
                            res = mannwhitneyu(va, vb, alternative="two-sided")
                            row.update(U=float(res.statistic), p=float(res.pvalue), rank_biserial=2 * float(res.statistic) / (len(va) * len(vb)) - 1)
                    block.append(row)
                for row, adj in zip(block, _holm([r["p"] for r in block])):
                    row["p_holm"] = adj
                rows += block
    return rows


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(n: int) -> list:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight"), suffix=".png")
    plt.close(fig)
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


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def _num(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.6g}"


def _json_num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def score_labels(
    results: Mapping[str, FrameLabels] | Sequence[FrameLabels],
    out_dir: str | os.PathLike,
    groups: Mapping[str, str] | str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Score per-frame labels of many videos and write the report and plots into ``out_dir``.

    Returns the written paths by role: ``report_csv``, ``report_json``, ``time_budget``,
    ``ethogram:<video>``, ``per_frame:<video>``, and with groups ``groups_csv``, ``groups_boxplot``.
    """
    if not isinstance(results, Mapping):
        results = {Path(r.video).stem or f"video{i}": r for i, r in enumerate(results)}
    if not results:
        raise FommError("nothing to score")
    classes = next(iter(results.values())).classes
    for name, r in results.items():
        if r.classes != classes:
            raise FommError(f"video '{name}' was labelled with classes {list(r.classes)}, others with {list(classes)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    scores = []
    for name, r in results.items():
        s = score_video(r, name)
        scores.append(s)
        written[f"ethogram:{name}"] = plot_ethogram(r, out / "ethograms" / f"{name}.png", title=f"ethogram: {name}")
        written[f"per_frame:{name}"] = r.to_csv(out / "per_frame" / f"{name}.csv")
    if isinstance(groups, (str, os.PathLike)):
        groups = read_groups(groups)
    group_of = dict(groups) if groups else {}

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["video", "group", "behaviour", "time_fraction", "time_s", "bouts", "mean_bout_s", "latency_s"])
            for s in scores:
                for b, st in s.behaviours.items():
                    w.writerow([s.name, group_of.get(s.name, ""), b, _num(st.time_fraction), _num(st.time_s), st.bouts,
                                _num(st.mean_bout_s), _num(st.latency_s)])

    written["report_csv"] = atomic_write(out / "report.csv", write_csv)
    comparisons: list[dict] = []
    if group_of:
        comparisons = compare_groups(scores, group_of)
        keys = ["behaviour", "metric", "group_a", "group_b", "n_a", "n_b", "median_a", "median_b", "U", "p", "p_holm", "rank_biserial"]

        def write_groups(tmp: Path) -> None:
            with open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(keys)
                for row in comparisons:
                    w.writerow([_num(row[k]) if isinstance(row[k], float) else row[k] for k in keys])

        written["groups_csv"] = atomic_write(out / "groups.csv", write_groups)
        written["groups_boxplot"] = plot_group_boxes(scores, group_of, out / "groups_boxplot.png")
    report = {
        "classes": list(classes),
        "metrics": {"time_fraction": "fraction of labelled frames", "time_s": "seconds", "bouts": "count",
                    "mean_bout_s": "seconds", "latency_s": "seconds from the first labelled frame"},
        "videos": {
            s.name: {
                "group": group_of.get(s.name),
                "frames": s.frames,
                "duration_s": s.duration_s,
                "fps": results[s.name].fps,
                "behaviours": {b: {k: _json_num(v) for k, v in st.__dict__.items()} for b, st in s.behaviours.items()},
                "transitions": {a: {b: int(s.transitions[i, j]) for j, b in enumerate(classes) if s.transitions[i, j]}
                                for i, a in enumerate(classes)},
            }
            for s in scores
        },
        "group_comparisons": [{k: (_json_num(v) if isinstance(v, float) else v) for k, v in row.items()} for row in comparisons],
    }
    written["report_json"] = atomic_write(out / "report.json", lambda tmp: tmp.write_text(json.dumps(report, indent=2)))
    written["time_budget"] = plot_time_budget(scores, out / "time_budget.png")
    return written


def _expand_sources(sources: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES + TRACK_SUFFIXES + (".csv",))
            if not found:
                raise FommError(f"no videos, tracks or per-frame label files in {p}")
            paths += found
        elif p.is_file():
            paths.append(p)
        else:
            raise FommError(f"not found: {p}")
    return paths


def _is_frame_labels_csv(path: Path) -> bool:
    with open(path, newline="") as fh:
        header = fh.readline().strip().split(",")
    return "frame" in header and "label" in header


def _track_video(path: Path, checkpoint: str | os.PathLike | None) -> Tracks:
    if checkpoint is None:
        raise FommError(f"{path} is a video: pass a detector checkpoint to track it (or give its tracks file)")
    try:
        from fomm_kp import api
    except ImportError as exc:
        raise FommError(f"tracking videos needs fomm_kp.api, which is not available: {exc}") from exc
    model = api.load_model(checkpoint)
    return api.track(path, model)


def load_source(path: str | os.PathLike, clf: Classifier | None, checkpoint: str | os.PathLike | None = None,
                min_bout_seconds: float = 0.0) -> FrameLabels:
    """Per-frame labels of one file: a per-frame CSV as is; tracks or a video through ``clf``."""
    path = Path(path)
    if path.suffix.lower() == ".csv" and _is_frame_labels_csv(path):
        return FrameLabels.from_csv(path)
    if clf is None:
        raise FommError(f"{path} holds tracks or video: a classifier is needed to label it")
    tracks = _track_video(path, checkpoint) if path.suffix.lower() in VIDEO_SUFFIXES else load_tracks(path)
    result = classify(tracks, clf, min_bout_seconds=min_bout_seconds)
    if not result.video:
        result = FrameLabels(result.frame_indices, result.probabilities, result.labels, result.classes, result.fps, str(path))
    return result


def score(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    classifier: Classifier | str | os.PathLike | None = None,
    groups: Mapping[str, str] | str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    min_bout_seconds: float = 0.0,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Path]:
    """Label and score every video of a study.

    Args:
        sources: a folder, or files: tracks (``.npz``, DeepLabCut ``.csv``/``.h5``, ``.slp``,
            ``.nwb``), per-frame label CSVs (``frame,label,...``) or videos (need ``checkpoint``).
        out_dir: where the report and plots go.
        classifier: a :class:`Classifier` or its ``.npz`` (not needed for per-frame CSVs).
        groups: ``{video: group}`` or a ``video,group`` CSV, for the group comparison.
        checkpoint: detector checkpoint used to track video sources.
        min_bout_seconds: bouts shorter than this are merged into a neighbour.
        progress: called as ``progress(done, total, name)`` after each video.

    Returns:
        Written paths by role (see :func:`score_labels`); also the per-video names.
    """
    clf = load_classifier(classifier) if isinstance(classifier, (str, os.PathLike)) else classifier
    paths = _expand_sources(sources)
    results: dict[str, FrameLabels] = {}
    for i, path in enumerate(paths):
        name = path.stem
        if name in results:
            raise FommError(f"two sources share the name '{name}': rename one so the report can tell them apart")
        results[name] = load_source(path, clf, checkpoint, min_bout_seconds)
        log.info("labelled %s (%d frames)", name, len(results[name].frame_indices))
        if progress is not None:
            progress(i + 1, len(paths), name)
    return score_labels(results, out_dir, groups)


def behaviour_demo(tracks: Tracks, labels_csv: str | os.PathLike, out_dir: str | os.PathLike,
                   kind: str = "logistic", min_bout_seconds: float = 0.5) -> dict[str, Path]:
    """The behaviour half of ``fomm-kp demo``: features → classifier from a few labelled segments →
    per-frame labels → score report with plots.

    Writes into ``out_dir``: ``features.npz``, ``spectrogram.png``, ``classifier.npz``, the score
    report (see :func:`score_labels`); returns the written paths by role.
    """
    from fomm_kp.behaviour.features import motion_features, plot_keypoint_spectrogram, resolve_config, save_features
    from fomm_kp.behaviour.classifiers import save_classifier

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    segments = read_segments(labels_csv)
    config = resolve_config(tracks)
    feats = motion_features(tracks, config)
    written = {"features": save_features(feats, out / "features.npz")}
    written["spectrogram"] = plot_keypoint_spectrogram(tracks, out / "spectrogram.png", config)
    video = Path(tracks.video).stem
    mine = [s for s in segments if Path(s.video).stem == video]
    if not mine:
        raise FommError(f"{labels_csv} has no segment for video '{video}' (video column must name it)")
    clf = fit_classifier(feats, mine, kind=kind)
    written["classifier"] = save_classifier(clf, out / "classifier.npz")
    result = classify(feats, clf, min_bout_seconds=min_bout_seconds)
    written.update(score_labels({video or "video": result}, out))
    return written
