"""Few-shot behaviour classifiers over window features, and per-frame labels from them.

A user labels a handful of segments per behaviour (a CSV ``video,start_frame,end_frame,label``,
frames 0-based and ``end_frame`` INCLUSIVE) or gives one example clip per label. Windows whose
span lies mostly (>= half) inside one segment take its label; the others are not used.

Classifier kinds:
- ``prototype``: nearest class mean of standardised features; probabilities from a softmax of
  squared distances scaled by the within-class spread of the training windows.
- ``knn``: k nearest training windows (distance-weighted votes).
- ``logistic``: multinomial logistic regression (scikit-learn fits; prediction is plain numpy).
- ``temporal``: a small dilated 1-D convolutional network (torch) over the per-frame egocentric
  pose and motion signals of each window (:func:`fomm_kp.features.frame_signals`).

Window probabilities become per-frame probabilities by averaging all windows that cover a frame;
the label of a frame is the most probable class, and bouts shorter than a minimum can be merged
into their more probable neighbour. A classifier is saved as ``.npz`` arrays plus JSON text; it
is never pickled.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence, Union

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.behaviour.features import (
    FeatureConfig,
    Features,
    FrameSignals,
    frame_signals,
    motion_features,
    resolve_config,
    window_bounds,
)
from fomm_kp.files import atomic_write
from fomm_kp.tracks import Tracks

__all__ = [
    "KINDS",
    "Segment",
    "ClassifierOptions",
    "Classifier",
    "FrameLabels",
    "read_segments",
    "window_labels",
    "fit_classifier",
    "fit_from_clips",
    "fit_window_classifier",
    "feature_standardisation",
    "signed_log",
    "fisher_weights",
    "predict_windows",
    "frame_probabilities",
    "enforce_min_bout",
    "classify",
    "rank_labels",
    "save_classifier",
    "load_classifier",
]

log = logging.getLogger(__name__)

KINDS = ("prototype", "knn", "logistic", "temporal")
_FORMAT = "fomm_kp.classifier/1"
_CLIP = 8.0  # standardised feature values are clipped to +-_CLIP so one wild value cannot dominate

Source = Union[Tracks, Features]


@dataclass(frozen=True)
class Segment:
    """One labelled stretch of a video: frames ``start_frame..end_frame`` (both inclusive)."""

    video: str
    start_frame: int
    end_frame: int
    label: str

    def __post_init__(self) -> None:
        if self.end_frame < self.start_frame or self.start_frame < 0:
            raise FommError(f"bad segment {self.video}:{self.start_frame}-{self.end_frame} ({self.label})")
        if not str(self.label):
            raise FommError(f"segment {self.video}:{self.start_frame}-{self.end_frame} has an empty label")


@dataclass(frozen=True)
class ClassifierOptions:
    """Settings of the classifier kinds (each kind reads its own).

    Attributes:
        signed_log: window kinds see ``sign(x) * log(1 + |x|)`` of each feature before
            standardisation, which tames heavy-tailed speeds, accelerations and powers.
        fisher_weights: ``prototype`` and ``knn`` weight each standardised feature by how far
            apart the class means are compared with the spread inside classes (a diagonal
            Fisher ratio from the training windows alone), so features that vary as much within
            an example as between behaviours count little.
    """

    signed_log: bool = True
    fisher_weights: bool = True
    knn_k: int = 5
    logistic_c: float = 0.5
    temporal_steps: int = 300
    temporal_hidden: int = 32
    temporal_lr: float = 3e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.knn_k < 1 or self.logistic_c <= 0 or self.temporal_steps < 1 or self.temporal_hidden < 1:
            raise FommError(f"bad classifier options: {self}")


@dataclass(frozen=True, eq=False)
class Classifier:
    """A fitted classifier: plain arrays + JSON-able parameters.

    Attributes:
        kind: one of :data:`KINDS`.
        classes: C class names.
        feature_names: F input columns (window kinds) or frame-signal names (temporal).
        mean, scale: ``(F,)`` standardisation.
        arrays: kind-specific arrays (prototypes, training windows, weights).
        params: kind-specific JSON-able settings.
        feature_config: the :class:`FeatureConfig` (as data) that made the training features.
    """

    kind: str
    classes: tuple[str, ...]
    feature_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    feature_config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FommError(f"unknown classifier kind '{self.kind}': use one of {', '.join(KINDS)}")
        f = len(self.feature_names)
        mean = np.asarray(self.mean, dtype=np.float64)
        scale = np.asarray(self.scale, dtype=np.float64)
        if mean.shape != (f,) or scale.shape != (f,):
            raise FommError(f"classifier standardisation must have shape ({f},), got {mean.shape}, {scale.shape}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "feature_names", tuple(str(n) for n in self.feature_names))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        """``(W, F)`` raw features → (signed log when fitted so) standardised, clipped, NaN → 0."""
        x = np.asarray(x, dtype=np.float64)
        if self.params.get("signed_log", False):
            x = signed_log(x)
        z = (x - self.mean) / self.scale
        return np.clip(np.nan_to_num(z, nan=0.0, posinf=_CLIP, neginf=-_CLIP), -_CLIP, _CLIP)

    def _weights(self, n: int) -> np.ndarray:
        return self.arrays["weights"] if "weights" in self.arrays else np.ones(n)

    def predict_proba_features(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(W, C)`` of raw window features ``x (W, F)`` (not for ``temporal``)."""
        if self.kind == "temporal":
            raise FommError("a temporal classifier predicts from tracks, not from a feature table")
        z = self.standardise(x)
        if self.kind == "prototype":
            protos = self.arrays["prototypes"]
            w = self._weights(z.shape[1])
            d2 = (((z[:, None, :] - protos[None]) ** 2) * w).mean(axis=2)
            return _softmax(-d2 / (2.0 * float(self.params["spread"])))
        if self.kind == "knn":
            train, labels = self.arrays["train_x"], self.arrays["train_y"].astype(np.int64)
            k = min(int(self.params["k"]), len(train))
            root_w = np.sqrt(self._weights(z.shape[1]))
            d2 = _sq_dists(z * root_w, train * root_w)
            nearest = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < len(train) else np.argsort(d2, axis=1)[:, :k]
            weights = 1.0 / (np.take_along_axis(d2, nearest, axis=1) / z.shape[1] + 1e-3)
            probs = np.zeros((len(z), self.num_classes))
            np.add.at(probs, (np.repeat(np.arange(len(z)), k), labels[nearest].ravel()), weights.ravel())
            return probs / probs.sum(axis=1, keepdims=True)
        logits = z @ self.arrays["coef"].T + self.arrays["intercept"]
        return _softmax(logits)


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
        import pandas as pd

        path = Path(path)
        if not path.is_file():
            raise FommError(f"per-frame labels not found: {path}")
        df = pd.read_csv(path, keep_default_na=False)
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


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def read_segments(path: str | os.PathLike) -> list[Segment]:
    """Read a labels CSV with columns ``video,start_frame,end_frame,label`` (end inclusive)."""
    path = Path(path)
    if not path.is_file():
        raise FommError(f"labels file not found: {path}")
    segments = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        needed = {"video", "start_frame", "end_frame", "label"}
        if reader.fieldnames is None or not needed <= set(reader.fieldnames):
            raise FommError(f"{path} must have columns video,start_frame,end_frame,label (has {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            try:
                start, end = int(row["start_frame"]), int(row["end_frame"])
            except ValueError as exc:
                raise FommError(f"{path} line {line}: frames must be integers ({exc})") from exc
            segments.append(Segment(row["video"].strip(), start, end, row["label"].strip()))
    if not segments:
        raise FommError(f"{path} holds no labelled segments")
    return segments


def _video_key(name: str) -> str:
    return Path(str(name)).stem


def window_labels(starts: np.ndarray, ends: np.ndarray, segments: Sequence[Segment]) -> np.ndarray:
    """Label of each window ``[starts, ends)`` from segments of ONE video ("" = unlabelled).

    A window takes a segment's label when at least half of its span lies in segments of that label.
    """
    starts, ends = np.asarray(starts), np.asarray(ends)
    out = np.full(len(starts), "", dtype=object)
    if not segments:
        return out
    labels = sorted({s.label for s in segments})
    cover = np.zeros((len(starts), len(labels)))
    for s in segments:
        overlap = np.clip(np.minimum(ends, s.end_frame + 1) - np.maximum(starts, s.start_frame), 0, None)
        cover[:, labels.index(s.label)] += overlap
    frac = cover / (ends - starts)[:, None]
    best = np.argmax(frac, axis=1)
    ok = frac[np.arange(len(starts)), best] >= 0.5
    out[ok] = np.asarray(labels, dtype=object)[best[ok]]
    return out


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def signed_log(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x|)``: keeps sign and order, compresses heavy tails (NaN stays NaN)."""
    return np.sign(x) * np.log1p(np.abs(x))


def fisher_weights(z: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-feature weight ``var(class means) / (mean within-class variance + 0.1)`` of standardised
    windows ``z (W, F)``, normalised to mean 1 (all ones when every weight is zero)."""
    means = np.stack([z[target == c].mean(axis=0) for c in range(num_classes)])
    within = np.mean([z[target == c].var(axis=0) for c in range(num_classes)], axis=0)
    w = means.var(axis=0) / (within + 0.1)
    return w / w.mean() if w.mean() > 0 else np.ones_like(w)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T, 0.0)


def feature_standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and scale of ``x (W, F)`` ignoring NaN; unusable columns get mean 0, scale 1."""
    valid = np.isfinite(x)
    n = valid.sum(axis=0)
    x0 = np.where(valid, x, 0.0)
    mean = x0.sum(axis=0) / np.maximum(n, 1)
    var = (np.where(valid, x - mean, 0.0) ** 2).sum(axis=0) / np.maximum(n, 1)
    scale = np.sqrt(var)
    dead = (n == 0) | ~np.isfinite(scale) | (scale <= 1e-8 * np.maximum(np.abs(mean), 1.0))
    mean = np.where(n == 0, 0.0, mean)
    scale = np.where(dead, 1.0, scale)
    return mean, scale


def _as_features(source: Source, config: FeatureConfig | None) -> Features:
    if isinstance(source, Features):
        return source
    if isinstance(source, Tracks):
        return motion_features(source, config)
    raise FommError(f"expected Tracks or Features, got {type(source).__name__}")


def _training_pairs(
    data: Source | Sequence[Source], labels: str | os.PathLike | Sequence[Segment] | Sequence[str] | np.ndarray
) -> list[tuple[Source, np.ndarray | list[Segment]]]:
    """Pair each source with its labels: per-window label strings, or the segments of its video."""
    sources = [data] if isinstance(data, (Tracks, Features)) else list(data)
    if not sources:
        raise FommError("no training data given")
    if isinstance(labels, (str, os.PathLike)):
        labels = read_segments(labels)
    labels = list(labels)
    if labels and all(isinstance(s, Segment) for s in labels):
        by_video: dict[str, list[Segment]] = {}
        for s in labels:
            by_video.setdefault(_video_key(s.video), []).append(s)
        pairs = []
        for src in sources:
            key = _video_key(src.video)
            if key in by_video:
                pairs.append((src, by_video[key]))
        if not pairs:
            raise FommError(
                f"no labelled segment names a given video: labels name {sorted(by_video)[:5]}, "
                f"data comes from {[_video_key(s.video) for s in sources][:5]} (matched by file name without extension)"
            )
        unused = set(by_video) - {_video_key(s.video) for s, _ in pairs}
        if unused:
            log.warning("labels for %d video(s) without data were ignored: %s", len(unused), sorted(unused)[:5])
        return pairs
    if len(sources) != 1:
        raise FommError("per-window labels need exactly one Features table; use segments for several videos")
    return [(sources[0], np.asarray(labels, dtype=object))]


def fit_classifier(
    data: Source | Sequence[Source],
    labels: str | os.PathLike | Sequence[Segment] | Sequence[str] | np.ndarray,
    kind: str = "prototype",
    config: FeatureConfig | None = None,
    options: ClassifierOptions | None = None,
) -> Classifier:
    """Fit a few-shot classifier.

    Args:
        data: Tracks or Features of one video, or a list of them (matched to segments by the
            video's file name without extension). ``temporal`` needs Tracks.
        labels: a labels CSV path or :class:`Segment` list (``video,start_frame,end_frame,label``,
            end inclusive), or one label string per window of a single Features ("" = unlabelled).
        kind: ``prototype``, ``knn``, ``logistic`` or ``temporal``.
        config: feature settings used for Tracks (Features keep their own).
        options: classifier settings.

    Returns:
        A :class:`Classifier` whose ``predict`` works on any Tracks (features recomputed with the
        same settings) or Features with the same columns.
    """
    if kind not in KINDS:
        raise FommError(f"unknown classifier kind '{kind}': use one of {', '.join(KINDS)}")
    options = options or ClassifierOptions()
    pairs = _training_pairs(data, labels)
    tracks_given = [src for src, _ in pairs if isinstance(src, Tracks)]
    if tracks_given:
        config = resolve_config(tracks_given, config)
    if kind == "temporal":
        return _fit_temporal(pairs, config or FeatureConfig(), options)
    xs, ys = [], []
    names: tuple[str, ...] | None = None
    feature_config: dict = {}
    for src, lab in pairs:
        feats = _as_features(src, config)
        names = names or feats.names
        if feats.names != names:
            raise FommError(f"features of {feats.video or 'a source'} have different columns from the first source")
        feature_config = feature_config or feats.config
        win = window_labels(feats.start_frames, feats.end_frames, lab) if not isinstance(lab, np.ndarray) else lab
        if len(win) != feats.num_windows:
            raise FommError(f"{len(win)} window labels for {feats.num_windows} windows")
        keep = np.array([bool(v) for v in win])
        xs.append(feats.values[keep])
        ys += [str(v) for v in win[keep]]
    return fit_window_classifier(np.concatenate(xs), ys, names or (), kind, options, feature_config)


def fit_from_clips(
    clips: Mapping[str, Source | Sequence[Source]] | Sequence[tuple[str, Source]],
    kind: str = "prototype",
    config: FeatureConfig | None = None,
    options: ClassifierOptions | None = None,
) -> Classifier:
    """Fit from example clips: every window of a clip has the clip's label.

    Args:
        clips: ``{label: clip or [clips]}`` or ``[(label, clip), ...]``; a clip is Tracks
            (features computed with ``config``) or Features.
    """
    items: list[tuple[str, Source]] = []
    if isinstance(clips, Mapping):
        for label, value in clips.items():
            for clip in [value] if isinstance(value, (Tracks, Features)) else list(value):
                items.append((str(label), clip))
    else:
        items = [(str(label), clip) for label, clip in clips]
    if not items:
        raise FommError("no example clips given")
    tracks_given = [clip for _, clip in items if isinstance(clip, Tracks)]
    if tracks_given:
        config = resolve_config(tracks_given, config)
    if kind == "temporal":
        pairs = []
        for label, clip in items:
            if not isinstance(clip, Tracks):
                raise FommError("a temporal classifier learns from Tracks clips, not Features")
            pairs.append((clip, [Segment(clip.video, int(clip.frame_indices[0]), int(clip.frame_indices[-1]), label)]))
        return _fit_temporal(pairs, config or FeatureConfig(), options or ClassifierOptions())
    feats = [(label, _as_features(clip, config)) for label, clip in items]
    names = feats[0][1].names
    if any(f.names != names for _, f in feats):
        raise FommError("example clips gave features with different columns (mixed keypoint sets or settings)")
    x = np.concatenate([f.values for _, f in feats])
    y = [label for label, f in feats for _ in range(f.num_windows)]
    return fit_window_classifier(x, y, names, kind, options or ClassifierOptions(), feats[0][1].config)


def fit_window_classifier(
    x: np.ndarray, y: Sequence[str], names: tuple[str, ...], kind: str, options: ClassifierOptions, feature_config: dict
) -> Classifier:
    """Fit a window classifier on raw features ``x (W, F)`` with one label per window ``y``."""
    classes = tuple(sorted(set(y)))
    if len(classes) < 2:
        raise FommError(f"need examples of at least 2 behaviours, got {list(classes)} (check the labels and the window length)")
    target = np.array([classes.index(v) for v in y], dtype=np.int64)
    x = np.asarray(x, dtype=np.float64)
    common = {"signed_log": bool(options.signed_log)}
    mean, scale = feature_standardisation(signed_log(x) if options.signed_log else x)
    base = Classifier(kind, classes, names, mean, scale, params=common, feature_config=feature_config)
    z = base.standardise(x)
    counts = np.bincount(target, minlength=len(classes))
    log.info("fitting a %s classifier on %d windows: %s", kind, len(z), dict(zip(classes, counts.tolist())))
    weights = {"weights": fisher_weights(z, target, len(classes))} if options.fisher_weights else {}
    if kind == "prototype":
        protos = np.stack([z[target == c].mean(axis=0) for c in range(len(classes))])
        w = weights.get("weights", np.ones(z.shape[1]))
        spread = float((((z - protos[target]) ** 2) * w).mean())
        spread = spread if spread > 1e-6 else 1.0
        return Classifier(kind, classes, names, mean, scale, {"prototypes": protos, **weights}, {**common, "spread": spread},
                          feature_config)
    if kind == "knn":
        return Classifier(kind, classes, names, mean, scale, {"train_x": z, "train_y": target, **weights},
                          {**common, "k": options.knn_k}, feature_config)
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=options.logistic_c, max_iter=2000, class_weight="balanced", random_state=options.seed)
    model.fit(z, target)
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # binary: sigmoid(w.x + b) == softmax([0, w.x + b])
        coef = np.concatenate([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return Classifier(kind, classes, names, mean, scale, {"coef": coef, "intercept": intercept},
                      {**common, "C": options.logistic_c}, feature_config)


# --------------------------------------------------------------------------------------------
# Temporal model (torch)
# --------------------------------------------------------------------------------------------


def _temporal_net(channels: int, hidden: int, classes: int):
    import torch
    from torch import nn

    class TemporalNet(nn.Module):
        """Two dilated 1-D convolutions, mean+max pooling over time, a linear head.

        Input ``(B, C, L)`` standardised signals; output ``(B, classes)`` logits.
        """

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv1d(channels, hidden, 5, padding=2)
            self.conv2 = nn.Conv1d(hidden, hidden, 5, padding=4, dilation=2)
            self.head = nn.Linear(2 * hidden, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.nn.functional.gelu(self.conv1(x))
            h = torch.nn.functional.gelu(self.conv2(h)) + h
            pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
            return self.head(pooled)

    return TemporalNet()


def _signal_windows(sig: FrameSignals, config: FeatureConfig) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Input rows (longest window) and output spans (first window) of each window, in grid rows."""
    bounds = window_bounds(len(sig.frame_indices), sig.fps, config)
    (a0, b0), (al, bl) = bounds[0], bounds[-1]
    return list(zip(al.tolist(), bl.tolist())), a0, b0


def _fit_temporal(
    pairs: list[tuple[Source, np.ndarray | list[Segment]]], config: FeatureConfig, options: ClassifierOptions
) -> Classifier:
    import torch

    samples: list[tuple[np.ndarray, str]] = []
    channel_names: tuple[str, ...] | None = None
    for src, lab in pairs:
        if not isinstance(src, Tracks):
            raise FommError("a temporal classifier learns from Tracks, not from a feature table")
        if isinstance(lab, np.ndarray):
            raise FommError("a temporal classifier needs labelled segments, not per-window labels")
        sig = frame_signals(src, config)
        channel_names = channel_names or sig.names
        if sig.names != channel_names:
            raise FommError("training tracks have different keypoints")
        inputs, a0, b0 = _signal_windows(sig, config)
        spans_start = sig.frame_indices[a0]
        spans_end = sig.frame_indices[b0 - 1] + sig.step
        win = window_labels(spans_start, spans_end, lab)
        for (a, b), label in zip(inputs, win):
            if label:
                samples.append((sig.values[a:b], str(label)))
    classes = tuple(sorted({label for _, label in samples}))
    if len(classes) < 2:
        raise FommError(f"need examples of at least 2 behaviours, got {list(classes)}")
    stacked = np.concatenate([s for s, _ in samples])
    mean, scale = feature_standardisation(stacked)
    rng = np.random.default_rng(options.seed)
    torch.manual_seed(options.seed)
    net = _temporal_net(len(mean), options.temporal_hidden, len(classes))
    opt = torch.optim.AdamW(net.parameters(), lr=options.temporal_lr, weight_decay=1e-3)
    targets = np.array([classes.index(label) for _, label in samples])
    weights = 1.0 / np.bincount(targets, minlength=len(classes))[targets]
    weights /= weights.sum()
    z_samples = [np.clip(np.nan_to_num((s - mean) / scale, nan=0.0), -_CLIP, _CLIP).astype(np.float32) for s, _ in samples]
    batch = 16
    log.info("training a temporal classifier on %d windows of %d classes for %d steps", len(samples), len(classes), options.temporal_steps)
    net.train()
    for _ in range(options.temporal_steps):
        idx = rng.choice(len(samples), size=batch, p=weights)
        length = min(len(z_samples[i]) for i in idx)
        crops = []
        for i in idx:
            s = z_samples[i]
            off = int(rng.integers(0, len(s) - length + 1))
            crop = s[off : off + length] * rng.uniform(0.9, 1.1)  # small amplitude jitter
            crops.append(crop.T)
        x = torch.from_numpy(np.stack(crops).astype(np.float32))
        y = torch.from_numpy(targets[idx])
        loss = torch.nn.functional.cross_entropy(net(x), y, label_smoothing=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
    arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    params = {"hidden": options.temporal_hidden, "final_loss": float(loss.item())}
    return Classifier("temporal", classes, channel_names or (), mean, scale, arrays, params, config.to_dict())


def _predict_temporal(clf: Classifier, tracks: Tracks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import torch

    config = FeatureConfig.from_dict(clf.feature_config)
    sig = frame_signals(tracks, config)
    if sig.names != clf.feature_names:
        raise FommError(
            f"these tracks give signals {list(sig.names)[:4]}... but the classifier was trained on {list(clf.feature_names)[:4]}..."
        )
    net = _temporal_net(len(clf.mean), int(clf.params["hidden"]), clf.num_classes)
    state = {k.removeprefix("net."): torch.from_numpy(np.asarray(v)) for k, v in clf.arrays.items() if k.startswith("net.")}
    net.load_state_dict(state)
    net.eval()
    z = clf.standardise(sig.values).astype(np.float32)
    inputs, a0, b0 = _signal_windows(sig, config)
    probs = np.zeros((len(inputs), clf.num_classes))
    with torch.no_grad():
        for length in sorted({b - a for a, b in inputs}):
            rows = [i for i, (a, b) in enumerate(inputs) if b - a == length]
            x = torch.from_numpy(np.stack([z[inputs[i][0] : inputs[i][1]].T for i in rows]))
            probs[rows] = torch.softmax(net(x), dim=1).numpy()
    return probs, sig.frame_indices[a0], sig.frame_indices[b0 - 1] + sig.step


# --------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------


def predict_windows(clf: Classifier, source: Source) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class probabilities of each window: ``(probs (W, C), start_frames (W,), end_frames (W,))``.

    Tracks are turned into features with the classifier's own feature settings.
    """
    if clf.kind == "temporal":
        if not isinstance(source, Tracks):
            raise FommError("a temporal classifier predicts from tracks, not from a feature table")
        return _predict_temporal(clf, source)
    if isinstance(source, Tracks):
        feats = motion_features(source, FeatureConfig.from_dict(clf.feature_config) if clf.feature_config else None)
    elif isinstance(source, Features):
        feats = source
    else:
        raise FommError(f"expected Tracks or Features, got {type(source).__name__}")
    probs = clf.predict_proba_features(feats.columns(clf.feature_names))
    return probs, feats.start_frames, feats.end_frames


def frame_probabilities(
    probs: np.ndarray, start_frames: np.ndarray, end_frames: np.ndarray, frame_indices: np.ndarray
) -> np.ndarray:
    """Average the probabilities ``(W, C)`` of all windows covering each frame: ``(T, C)``.

    Window ``w`` covers original frames ``start_frames[w] <= f < end_frames[w]``; frames that no
    window covers get NaN.
    """
    probs = np.asarray(probs, dtype=np.float64)
    frames = np.asarray(frame_indices, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != len(start_frames) or len(start_frames) != len(end_frames):
        raise FommError(f"window probabilities {probs.shape} do not match {len(start_frames)} windows")
    if np.any(np.diff(frames) <= 0):
        raise FommError("frame_indices must be strictly increasing")
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


def _bouts(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal labels: ``(label, start, stop)`` with ``stop`` exclusive."""
    if len(labels) == 0:
        return []
    change = np.nonzero(np.diff(labels))[0] + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(labels)]])
    return [(int(labels[s]), int(s), int(e)) for s, e in zip(starts, stops)]


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
            for lab, s, e in _bouts(labels):
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


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------


def save_classifier(clf: Classifier, path: str | os.PathLike) -> Path:
    """Write a classifier as ``.npz``: arrays plus one JSON metadata string; no pickles."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise FommError(f"classifiers are saved as .npz, not '{path.suffix}' ({path})")
    meta = {
        "format": _FORMAT,
        "kind": clf.kind,
        "classes": list(clf.classes),
        "feature_names": list(clf.feature_names),
        "params": clf.params,
        "feature_config": clf.feature_config,
        "arrays": sorted(clf.arrays),
    }

    def write(tmp: Path) -> None:
        payload = {f"array.{k}": np.asarray(v) for k, v in clf.arrays.items()}
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.str_(json.dumps(meta)), mean=clf.mean, scale=clf.scale, **payload)

    return atomic_write(path, write)


def load_classifier(path: str | os.PathLike) -> Classifier:
    """Read a classifier written by :func:`save_classifier` (``allow_pickle=False``)."""
    path = Path(path)
    if not path.is_file():
        raise FommError(f"classifier file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != _FORMAT:
                raise FommError(f"{path} is not a fomm_kp classifier (format {meta.get('format')!r})")
            arrays = {k: np.array(data[f"array.{k}"]) for k in meta["arrays"]}
            return Classifier(
                kind=meta["kind"],
                classes=tuple(meta["classes"]),
                feature_names=tuple(meta["feature_names"]),
                mean=np.array(data["mean"]),
                scale=np.array(data["scale"]),
                arrays=arrays,
                params=meta["params"],
                feature_config=meta["feature_config"],
            )
    except (KeyError, ValueError, OSError, json.JSONDecodeError) as exc:
        raise FommError(f"{path} is not a fomm_kp classifier: {exc}") from exc
