"""Score a study: label every video and write the report and plots.

``score(sources, out_dir, classifier)`` labels every video of a study (tracks files, per-frame
label CSVs, or videos with a detector checkpoint) and writes into ``out_dir``:

- ``report.csv``: one row per video and behaviour (time fraction, seconds, bouts, mean bout
  duration, latency to the first bout);
- ``report.json``: the same plus per-video transition counts and the group comparison;
- ``ethograms/<video>.png`` and ``per_frame/<video>.csv``; ``time_budget.png`` for all videos;
- with a groups file (``video,group``): ``groups.csv`` and ``groups_boxplot.png``
  (:func:`fomm_kp.behaviour.score.compare_groups`).

It returns a :class:`ScoreReport` naming what it wrote.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from fomm_kp.behaviour.classifiers import Classifier, load_classifier
from fomm_kp.behaviour.frame_labels import FrameLabels, classify
from fomm_kp.behaviour.plots import plot_ethogram, plot_group_boxes, plot_time_budget
from fomm_kp.behaviour.score import VideoScore, check_groups, compare_groups, read_groups, score_video
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write, read_text, rebased, staged_folder
from fomm_kp.progress import Progress, report
from fomm_kp.runtime import load_model, track
from fomm_kp.tracks import load_tracks
from fomm_kp.tracks.io import TRACK_SUFFIXES
from fomm_kp.video import VIDEO_SUFFIXES

__all__ = ["ScoreReport", "score_labels", "load_source", "score"]

log = logging.getLogger(__name__)

GROUP_KEYS = ("behaviour", "metric", "group_a", "group_b", "n_a", "n_b", "median_a", "median_b", "U", "p", "p_holm",
              "rank_biserial")
METRIC_UNITS = {"time_fraction": "fraction of labelled frames", "time_s": "seconds", "bouts": "count",
                "mean_bout_s": "seconds", "latency_s": "seconds from the first labelled frame"}


@dataclass(frozen=True)
class ScoreReport:
    """The files a scored study wrote: the reports, the time budget, and per video (by name) its
    ethogram and per-frame labels; with groups, their comparison and box plot."""

    report_csv: Path
    report_json: Path
    time_budget: Path
    ethograms: dict[str, Path] = field(default_factory=dict)
    per_frame: dict[str, Path] = field(default_factory=dict)
    groups_csv: Path | None = None
    groups_boxplot: Path | None = None

    @property
    def videos(self) -> list[str]:
        return list(self.ethograms)


def _num(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.6g}"


def _json_num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def _write_table(path: Path, header: Sequence[str], rows: list[list[object]]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)

    return atomic_write(path, write)


def _report_rows(scores: list[VideoScore], group_of: Mapping[str, str]) -> list[list[object]]:
    return [[s.name, group_of.get(s.name, ""), b, _num(st.time_fraction), _num(st.time_s), st.bouts,
             _num(st.mean_bout_s), _num(st.latency_s)]
            for s in scores for b, st in s.behaviours.items()]


def _report_json(results: Mapping[str, FrameLabels], scores: list[VideoScore], group_of: Mapping[str, str],
                 comparisons: list[dict]) -> dict:
    classes = scores[0].classes
    videos = {
        s.name: {
            "group": group_of.get(s.name), "frames": s.frames, "duration_s": s.duration_s, "fps": results[s.name].fps,
            "behaviours": {b: {k: _json_num(v) for k, v in st.__dict__.items()} for b, st in s.behaviours.items()},
            "transitions": {a: {b: int(s.transitions[i, j]) for j, b in enumerate(classes) if s.transitions[i, j]}
                            for i, a in enumerate(classes)},
        }
        for s in scores
    }
    rows = [{k: (_json_num(v) if isinstance(v, float) else v) for k, v in row.items()} for row in comparisons]
    return {"classes": list(classes), "metrics": METRIC_UNITS, "videos": videos, "group_comparisons": rows}


def _checked(results: Mapping[str, FrameLabels] | Sequence[FrameLabels]) -> dict[str, FrameLabels]:
    if not isinstance(results, Mapping):
        results = {Path(r.video).stem or f"video{i}": r for i, r in enumerate(results)}
    if not results:
        raise FommError("nothing to score")
    classes = next(iter(results.values())).classes
    for name, r in results.items():
        if r.classes != classes:
            raise FommError(f"video '{name}' was labelled with classes {list(r.classes)}, others with {list(classes)}")
    return dict(results)


def score_labels(
    results: Mapping[str, FrameLabels] | Sequence[FrameLabels],
    out_dir: str | os.PathLike,
    groups: Mapping[str, str] | str | os.PathLike | None = None,
) -> ScoreReport:
    """Score per-frame labels of many videos (by name) and write the report and plots into ``out_dir``
    (all at once: they are written beside it and moved in at the end, so a failure leaves nothing)."""
    results = _checked(results)
    group_of = dict(read_groups(groups) if isinstance(groups, (str, os.PathLike)) else groups or {})
    scores = [score_video(r, name) for name, r in results.items()]
    comparisons = compare_groups(scores, group_of) if group_of else []
    with staged_folder(out_dir) as out:
        written = _write_report(out, results, scores, group_of, comparisons)
    return rebased(written, out, Path(out_dir))


def _write_report(out: Path, results: dict[str, FrameLabels], scores: list[VideoScore], group_of: dict[str, str],
                  comparisons: list[dict]) -> ScoreReport:
    ethograms = {name: plot_ethogram(r, out / "ethograms" / f"{name}.png", title=f"ethogram: {name}")
                 for name, r in results.items()}
    per_frame = {name: r.to_csv(out / "per_frame" / f"{name}.csv") for name, r in results.items()}
    header = ["video", "group", "behaviour", "time_fraction", "time_s", "bouts", "mean_bout_s", "latency_s"]
    report_csv = _write_table(out / "report.csv", header, _report_rows(scores, group_of))
    groups_csv = groups_boxplot = None
    if group_of:
        rows = [[_num(row[k]) if isinstance(row[k], float) else row[k] for k in GROUP_KEYS] for row in comparisons]
        groups_csv = _write_table(out / "groups.csv", GROUP_KEYS, rows)
        groups_boxplot = plot_group_boxes(scores, group_of, out / "groups_boxplot.png")
    text = json.dumps(_report_json(results, scores, group_of, comparisons), indent=2)
    report_json = atomic_write(out / "report.json", lambda tmp: tmp.write_text(text))
    return ScoreReport(report_csv, report_json, plot_time_budget(scores, out / "time_budget.png"), ethograms,
                       per_frame, groups_csv, groups_boxplot)


def _expand_sources(sources: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES + TRACK_SUFFIXES)
            if not found:
                raise FommError(f"no videos, tracks or per-frame label files in {p}")
            paths += found
        elif p.is_file():
            paths.append(p)
        else:
            raise FommError(f"not found: {p}")
    return paths


def _is_frame_labels_csv(path: Path) -> bool:
    header = read_text(path, "CSV").partition("\n")[0].strip().split(",")
    return "frame" in header and "label" in header


def load_source(path: str | os.PathLike, clf: Classifier | None, checkpoint: str | os.PathLike | None = None,
                min_bout_seconds: float = 0.0) -> FrameLabels:
    """Per-frame labels of one file: a per-frame CSV as is; tracks or a video (tracked with the
    detector ``checkpoint``) through ``clf``."""
    path = Path(path)
    if path.suffix.lower() == ".csv" and _is_frame_labels_csv(path):
        return FrameLabels.from_csv(path)
    if clf is None:
        raise FommError(f"{path} holds tracks or video: a classifier is needed to label it")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        if checkpoint is None:
            raise FommError(f"{path} is a video: pass a detector checkpoint to track it (or give its tracks file)")
        tracks = track(path, load_model(checkpoint))
    else:
        tracks = load_tracks(path)
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
    progress: Progress | None = None,
) -> ScoreReport:
    """Label and score every video of a study.

    Args:
        sources: a folder, or files: tracks (``.npz``, DeepLabCut ``.csv``/``.h5``, ``.slp``,
            ``.nwb``), per-frame label CSVs (``frame,label,...``) or videos (need ``checkpoint``).
        out_dir: where the report and plots go.
        classifier: a :class:`Classifier` or its ``.npz`` (not needed for per-frame CSVs).
        groups: ``{video: group}`` or a ``video,group`` CSV, for the group comparison.
        checkpoint: detector checkpoint used to track video sources.
        min_bout_seconds: bouts shorter than this are merged into a neighbour.
        progress: hears after each video (its name is the update's stage).
    """
    clf = load_classifier(classifier) if isinstance(classifier, (str, os.PathLike)) else classifier
    paths = _expand_sources(sources)
    group_of = read_groups(groups) if isinstance(groups, (str, os.PathLike)) else groups
    if group_of:  # a groups file that names none of the sources is refused before any work
        check_groups(group_of, [path.stem for path in paths])
    results: dict[str, FrameLabels] = {}
    for i, path in enumerate(paths):
        name = path.stem
        if name in results:
            raise FommError(f"two sources share the name '{name}': rename one so the report can tell them apart")
        results[name] = load_source(path, clf, checkpoint, min_bout_seconds)
        log.info("labelled %s (%d frames)", name, len(results[name].frame_indices))
        report(progress, i + 1, len(paths), name)
    return score_labels(results, out_dir, group_of)
