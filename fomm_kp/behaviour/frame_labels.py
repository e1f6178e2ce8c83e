"""Per-frame behaviour of a video: window probabilities averaged over the windows that cover each
frame, the most probable class per frame, short bouts merged into their more probable neighbour.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from fomm_kp.behaviour.classifiers import Classifier
from fomm_kp.behaviour.features import Features, Source, check_usable, motion_features
from fomm_kp.behaviour.temporal import WindowPredictions, predict_temporal
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.tracks import Tracks

__all__ = ["FrameLabels", "Bout", "bouts", "predict_windows", "frame_probabilities", "enforce_min_bout", "classify",
           "rank_labels"]


@dataclass(frozen=True, eq=False)
class FrameLabels:
    """Per-frame behaviour of one video.

    Attributes:
        frame_indices: int64 ``(T,)`` original frame indices.
        probabilities: float32 ``(T, C)``; NaN rows where no window covers the frame.
        labels: int64 ``(T,)`` class index per frame, -1 where unknown.
        classes: C class names.
        fps: frames per second of the video.
        video: source video path.
    """

    frame_indices: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    fps: float
    video: str = ""

    def __post_init__(self) -> None:
        frames = np.asarray(self.frame_indices, dtype=np.int64)
        probs = np.asarray(self.probabilities, dtype=np.float32)
        labels = np.asarray(self.labels, dtype=np.int64)
        t = len(frames)
        if probs.shape != (t, len(self.classes)) or labels.shape != (t,):
            raise FommError(
                f"FrameLabels shapes disagree: frames {frames.shape}, probabilities {probs.shape}, labels {labels.shape}, {len(self.classes)} classes"
            )
        if labels.size and (labels.min() < -1 or labels.max() >= len(self.classes)):
            raise FommError("FrameLabels.labels must be -1 or a class index")
        object.__setattr__(self, "frame_indices", frames)
        object.__setattr__(self, "probabilities", probs)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "fps", float(self.fps))

    @property
    def label_names(self) -> list[str]:
        """The label of each frame as a string ("" where unknown)."""
        return [self.classes[i] if i >= 0 else "" for i in self.labels]

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write ``frame,time_s,label,p_<class>...`` rows."""

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["frame", "time_s", "label"] + [f"p_{c}" for c in self.classes])
                for t, frame in enumerate(self.frame_indices):
                    label = self.classes[self.labels[t]] if self.labels[t] >= 0 else ""
                    probs = ["" if np.isnan(p) else f"{p:.4f}" for p in self.probabilities[t]]
                    writer.writerow([int(frame), f"{frame / self.fps:.6f}", label] + probs)

        return atomic_write(path, write)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, fps: float | None = None, video: str = "") -> "FrameLabels":
        """Read a per-frame CSV: ``frame,label`` columns, optional ``time_s`` and ``p_<class>`` columns.

        Without probability columns the classes are the labels seen, in order of appearance, and
        each frame's probability is 1 for its label. fps comes from ``time_s`` when not given.
        """
        path = Path(path)
        if not path.is_file():
            raise FommError(f"per-frame labels not found: {path}")
        try:
            df = pd.read_csv(path, keep_default_na=False)
        except ValueError as exc:  # not UTF-8, not CSV, empty
            raise FommError(f"{path} is not a per-frame labels CSV ({' '.join(str(exc).split())[:120]})") from None
        if "frame" not in df.columns or "label" not in df.columns:
            raise FommError(f"{path} needs 'frame' and 'label' columns, has {list(df.columns)}")
        frames = df["frame"].to_numpy(dtype=np.int64)
        names = [str(v) for v in df["label"]]
        prob_cols = [c for c in df.columns if str(c).startswith("p_")]
        if prob_cols:
            classes = tuple(str(c)[2:] for c in prob_cols)
            probs = pd.to_numeric(df[prob_cols].stack(), errors="coerce").unstack().to_numpy(dtype=np.float64)
        else:
            classes = tuple(dict.fromkeys(n for n in names if n))
            probs = np.array([[1.0 if n == c else 0.0 for c in classes] for n in names]).reshape(len(names), len(classes))
        unknown = sorted({n for n in names if n and n not in classes})
        if unknown:
            raise FommError(f"{path}: label '{unknown[0]}' has no probability column")
        labels = np.array([classes.index(n) if n else -1 for n in names], dtype=np.int64)
        if fps is None:
            if "time_s" not in df.columns or len(frames) < 2:
                raise FommError(f"{path} has no time_s column to give the frame rate: pass fps")
            times = df["time_s"].to_numpy(dtype=np.float64)
            fps = float((frames[-1] - frames[0]) / (times[-1] - times[0]))
        return cls(frames, probs, labels, classes, fps, video or path.stem)


def predict_windows(clf: Classifier, source: Source) -> WindowPredictions:
    """Class probabilities of each window and the windows' frame spans.

    Tracks are turned into features (or per-frame signals) with the classifier's own settings.
    """
    if clf.temporal:
        if not isinstance(source, Tracks):
            raise FommError("a temporal classifier predicts from tracks, not from a feature table")
        check_usable(source)
        return predict_temporal(clf, source)
    if isinstance(source, Tracks):
        feats = motion_features(source, FeatureConfig.from_dict(clf.feature_config) if clf.feature_config else None)
    elif isinstance(source, Features):
        feats = source
    else:
        raise FommError(f"expected Tracks or Features, got {type(source).__name__}")
    probs = np.array(clf.predict_proba_features(feats.columns(clf.feature_names)), dtype=np.float64)
    has_data = feats.has_data()
    if not has_data.any():
        raise FommError(f"no window of {feats.video or 'the source'} has keypoint data (every point missing): "
                        "nothing to classify")
    probs[~has_data] = np.nan  # windows without data do not vote: their frames stay unknown
    return WindowPredictions(probs, feats.start_frames, feats.end_frames)


def frame_probabilities(
    probs: np.ndarray, start_frames: np.ndarray, end_frames: np.ndarray, frame_indices: np.ndarray
) -> np.ndarray:
    """Average the probabilities ``(W, C)`` of all windows covering each frame: ``(T, C)``.

    Window ``w`` covers original frames ``start_frames[w] <= f < end_frames[w]``; frames that no
    window covers get NaN. Windows with NaN probabilities (no data) cover nothing.
    """
    probs = np.asarray(probs, dtype=np.float64)
    frames = np.asarray(frame_indices, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != len(start_frames) or len(start_frames) != len(end_frames):
        raise FommError(f"window probabilities {probs.shape} do not match {len(start_frames)} windows")
    if np.any(np.diff(frames) <= 0):
        raise FommError("frame_indices must be strictly increasing")
    voting = np.isfinite(probs).all(axis=1)
    probs, start_frames, end_frames = probs[voting], np.asarray(start_frames)[voting], np.asarray(end_frames)[voting]
    a = np.searchsorted(frames, start_frames, side="left")
    b = np.searchsorted(frames, end_frames, side="left")
    acc = np.zeros((len(frames) + 1, probs.shape[1]))
    cnt = np.zeros(len(frames) + 1)
    np.add.at(acc, a, probs)
    np.add.at(acc, b, -probs)
    np.add.at(cnt, a, 1.0)
    np.add.at(cnt, b, -1.0)
    total, count = np.cumsum(acc, axis=0)[:-1], np.cumsum(cnt)[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count[:, None] > 0.5, total / count[:, None], np.nan)


class Bout(NamedTuple):
    """A run of equal labels: rows ``start`` to ``stop`` (exclusive)."""

    label: int
    start: int
    stop: int


def bouts(labels: np.ndarray) -> list[Bout]:
    """Runs of equal labels, unknown (-1) included, in order."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    change = np.nonzero(np.diff(labels))[0] + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(labels)]])
    return [Bout(int(labels[s]), int(s), int(e)) for s, e in zip(starts, stops)]


def enforce_min_bout(labels: np.ndarray, probs: np.ndarray, min_frames: int) -> np.ndarray:
    """Merge bouts shorter than ``min_frames`` into a neighbouring bout.

    Shorter bouts go first (all bouts of 1 frame, then of 2, ...); each takes the label of
    whichever neighbour's class has the higher mean probability over the bout's frames. Unknown
    stretches (-1) are never changed and never spread. A bout with no known neighbour (e.g. the
    only bout) is left as it is. Cost: ``O(min_frames * T)``.
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    probs = np.asarray(probs, dtype=np.float64)
    for length in range(1, max(int(min_frames), 1)):
        changed = True
        while changed:
            changed = False
            for lab, s, e in bouts(labels):
                if lab < 0 or e - s != length or labels[s] != lab:
                    continue
                neighbours = [int(labels[j]) for j in (s - 1, e) if 0 <= j < len(labels) and labels[j] >= 0]
                if not neighbours:
                    continue
                score = [np.nanmean(probs[s:e, n]) if np.isfinite(probs[s:e, n]).any() else -np.inf for n in neighbours]
                labels[s:e] = neighbours[int(np.argmax(score))]
                changed = True
    return labels


def classify(
    source: Source, clf: Classifier, min_bout_seconds: float = 0.0, frame_indices: np.ndarray | None = None
) -> FrameLabels:
    """Per-frame behaviour of one video from Tracks (or Features with the classifier's columns).

    Args:
        source: Tracks (features are computed with the classifier's settings) or Features.
        clf: a fitted :class:`Classifier`.
        min_bout_seconds: bouts shorter than this are merged into a neighbour (0 = off).
        frame_indices: frames to label; default every frame from the first window's start to
            the last window's end.
    """
    probs, starts, ends = predict_windows(clf, source)
    fps = source.fps
    if frame_indices is None:
        frame_indices = np.arange(int(starts.min()), int(ends.max()), dtype=np.int64)
    frame_probs = frame_probabilities(probs, starts, ends, frame_indices)
    known = np.isfinite(frame_probs).all(axis=1)
    labels = np.where(known, np.argmax(np.nan_to_num(frame_probs, nan=-1.0), axis=1), -1)
    if min_bout_seconds > 0:
        labels = enforce_min_bout(labels, frame_probs, int(round(min_bout_seconds * fps)))
    return FrameLabels(frame_indices, frame_probs, labels, clf.classes, fps, source.video)


def rank_labels(result: FrameLabels) -> list[tuple[str, float, float]]:
    """Classes ranked by mean probability: ``[(class, mean_probability, fraction_of_frames), ...]``."""
    known = result.labels >= 0
    mean = np.nanmean(result.probabilities[known], axis=0) if known.any() else np.zeros(len(result.classes))
    frac = np.bincount(result.labels[known], minlength=len(result.classes)) / max(int(known.sum()), 1)
    order = np.argsort(-mean)
    return [(result.classes[i], float(mean[i]), float(frac[i])) for i in order]
