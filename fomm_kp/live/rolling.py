"""Behaviour while the stream runs: the classifier over a rolling window of keypoints, and bouts.

:class:`RollingWindow` keeps the keypoints of the last frames (as long as the classifier's longest
feature window) and, every stride (the classifier's ``stride_seconds``), hands out the window's
:class:`~fomm_kp.tracks.Tracks`. :func:`label_window` classifies them exactly as offline
``classify`` would classify a tracks file holding those frames
(:func:`fomm_kp.behaviour.frame_labels.predict_windows`, the same features with the classifier's
own settings) and keeps its last feature window, the one that ends at the newest frame.
:class:`BoutTracker` opens and closes bouts as the top label changes. :class:`KeypointSmoother` is
the optional causal smoothing of keypoints.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np

from fomm_kp.behaviour.classifiers import Classifier
from fomm_kp.behaviour.frame_labels import predict_windows
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.errors import FommError
from fomm_kp.runtime.detector import Detections
from fomm_kp.tracks import Tracks

__all__ = ["WindowLabels", "RollingWindow", "label_window", "BoutEvent", "BoutTracker", "KeypointSmoother"]


class WindowLabels(NamedTuple):
    """The classifier's verdict on one window: frames ``[start, end)`` it read, the frames
    ``[span_start, end)`` its last feature window labels, and ``(label, probability)`` pairs, most
    probable first."""

    start: int
    end: int
    span_start: int
    ranked: tuple[tuple[str, float], ...]

    @property
    def top(self) -> tuple[str, float]:
        return self.ranked[0]


def _window_settings(clf: Classifier) -> FeatureConfig:
    return FeatureConfig.from_dict(clf.feature_config) if clf.feature_config else FeatureConfig()


class RollingWindow:
    """The detections of the last ``length`` frames (by frame number), due for a label every ``stride`` frames.

    :meth:`add` keeps one frame's detections of subject 0 and returns the window's Tracks when a
    label is due: once the window spans ``length`` frames, and then every ``stride`` frames.
    """

    def __init__(self, clf: Classifier, fps: float, num_keypoints: int, stride_seconds: float | None = None) -> None:
        if fps <= 0:
            raise FommError(f"the stream needs a positive frame rate to label behaviour, got {fps}")
        settings = _window_settings(clf)
        self.fps = fps
        self.length = max(2, int(round(max(settings.window_seconds) * fps)))
        stride = settings.stride_seconds if stride_seconds is None else stride_seconds
        self.stride = max(1, int(round(stride * fps)))
        self.names = tuple(f"kp{i}" for i in range(num_keypoints))
        self.rows: deque[tuple[int, Detections]] = deque()
        self.next_due: int | None = None

    def add(self, index: int, detections: Detections) -> Tracks | None:
        """Keep frame ``index`` (detections of one frame: keypoints ``(1, K, 2)`` ...); the window's
        tracks when a label is due, else None."""
        if self.rows and index <= self.rows[-1][0]:
            raise FommError(f"frame {index} came after frame {self.rows[-1][0]}")
        self.rows.append((index, detections))
        while self.rows[0][0] <= index - self.length:
            self.rows.popleft()
        if self.next_due is None:
            self.next_due = self.rows[0][0] + self.length - 1
        if index < self.next_due:
            return None
        self.next_due = index + self.stride
        return self.tracks()

    def tracks(self) -> Tracks:
        """The frames in the window as :class:`Tracks` (one subject, keypoints named ``kp0``... as
        ``track`` names them)."""
        frames = np.array([i for i, _ in self.rows], dtype=np.int64)
        parts = {name: np.concatenate([getattr(d, name) for _, d in self.rows])[:, None]
                 for name in ("keypoints", "scores", "jacobians", "covariances")}
        return Tracks(frame_indices=frames, fps=self.fps, keypoint_names=self.names, subject_names=("subject0",),
                      **parts)


def label_window(clf: Classifier, tracks: Tracks) -> WindowLabels:
    """Labels of the last feature window of ``tracks`` (the one ending at its newest frame)."""
    probs, starts, ends = predict_windows(clf, tracks)
    last = np.asarray(probs[-1], dtype=np.float64)
    order = np.argsort(-last, kind="stable")
    ranked = tuple((clf.classes[i], float(last[i])) for i in order)
    return WindowLabels(int(tracks.frame_indices[0]), int(tracks.frame_indices[-1]) + 1, int(starts[-1]), ranked)


class BoutEvent(NamedTuple):
    """A bout opened or closed: ``state`` ``open`` or ``close``, its label and frames ``[start, end)``
    (``end`` is None while it is open)."""

    state: str
    label: str
    start: int
    end: int | None


class BoutTracker:
    """Bouts of the top label, opened and closed as windows are labelled.

    A window whose top probability is below ``min_probability`` counts as no behaviour. A bout opens
    at the first frame its window labels and closes where the next bout's window begins (or at the
    last frame seen, when the stream ends).
    """

    def __init__(self, min_probability: float = 0.0) -> None:
        self.min_probability = min_probability
        self.open: BoutEvent | None = None

    def update(self, window: WindowLabels) -> list[BoutEvent]:
        label, probability = window.top
        label = label if probability >= self.min_probability else ""
        if self.open is not None and self.open.label == label:
            return []
        events = []
        start = max(window.span_start, self.open.start + 1) if self.open is not None else window.span_start
        if self.open is not None:
            events.append(BoutEvent("close", self.open.label, self.open.start, start))
        self.open = BoutEvent("open", label, start, None) if label else None
        if self.open is not None:
            events.append(self.open)
        return events

    def finish(self, end: int) -> list[BoutEvent]:
        """Close the open bout at frame ``end`` (exclusive)."""
        if self.open is None:
            return []
        closed = BoutEvent("close", self.open.label, self.open.start, max(end, self.open.start + 1))
        self.open = None
        return [closed]


class KeypointSmoother:
    """Causal exponential smoothing of keypoints: each frame's points weigh ``weight`` against the
    running mean (1: no smoothing). A missing point restarts its mean."""

    def __init__(self, weight: float) -> None:
        if not 0.0 < weight <= 1.0:
            raise FommError(f"smoothing weight must be in (0, 1], got {weight}")
        self.weight = weight
        self.mean: np.ndarray | None = None

    def __call__(self, keypoints: np.ndarray) -> np.ndarray:
        points = np.asarray(keypoints, dtype=np.float64)
        if self.weight >= 1.0 or self.mean is None:
            self.mean = points.copy()
        else:
            blended = self.weight * points + (1.0 - self.weight) * self.mean
            self.mean = np.where(np.isfinite(self.mean), blended, points)
        return self.mean.astype(np.float32)
