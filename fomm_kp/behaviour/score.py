"""What a study's per-frame labels say: time budgets, bouts, latencies, transitions, and the
comparison of groups of videos.

Latency is measured from the first labelled frame of each video; a behaviour that never occurs
has latency NaN and is left out of latency comparisons. Group comparison: a Mann–Whitney U test per
behaviour and metric for every pair of groups, with the rank-biserial effect size and Holm-adjusted
p over behaviours. The files of a study's report are written by :mod:`fomm_kp.behaviour.report`.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import mannwhitneyu

from fomm_kp.behaviour.frame_labels import FrameLabels, bouts
from fomm_kp.errors import FommError
from fomm_kp.files import read_text

__all__ = ["METRICS", "BehaviourStats", "VideoScore", "score_video", "check_groups", "compare_groups", "read_groups"]

log = logging.getLogger(__name__)

METRICS = ("time_fraction", "bouts", "mean_bout_s", "latency_s")


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
    with io.StringIO(read_text(path, "groups CSV"), newline="") as fh:
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


def check_groups(groups: Mapping[str, str], videos: Sequence[str]) -> None:
    """Every scored video must have a group, and there must be at least two groups to compare."""
    missing = [name for name in videos if name not in groups]
    if missing:
        raise FommError(f"the groups file does not list {len(missing)} scored video(s), e.g. '{missing[0]}'")
    names = sorted({groups[name] for name in videos})
    if len(names) < 2:
        raise FommError(f"need at least 2 groups to compare, got {names}")


def compare_groups(scores: Sequence[VideoScore], groups: Mapping[str, str]) -> list[dict]:
    """Mann–Whitney U per behaviour and metric for every pair of groups.

    Returns rows with ``behaviour, metric, group_a, group_b, n_a, n_b, median_a, median_b, U,
    p, p_holm, rank_biserial``; ``rank_biserial = 2U/(n_a n_b) − 1`` is positive when group a
    tends higher. ``p_holm`` adjusts over the behaviours of one metric and group pair.
    """
    check_groups(groups, [s.name for s in scores])
    names = sorted({groups[s.name] for s in scores})
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
