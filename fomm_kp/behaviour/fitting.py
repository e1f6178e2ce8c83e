"""Fitting a classifier from a few labelled segments per behaviour, or from example clips.

A user labels a handful of segments per behaviour (a CSV ``video,start_frame,end_frame,label``,
frames 0-based and ``end_frame`` INCLUSIVE; :mod:`fomm_kp.behaviour.segments`) or gives one example
clip per label. Windows whose span lies mostly (>= half) inside one segment take its label; the
others are not used.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Sequence, Union

import numpy as np

from fomm_kp.behaviour.classifiers import KINDS, TEMPORAL, Classifier, ClassifierOptions, fit_window_classifier
from fomm_kp.behaviour.features import Features, Source, motion_features
from fomm_kp.behaviour.segments import Segment, read_segments, video_key, window_labels
from fomm_kp.behaviour.signals import resolve_config
from fomm_kp.behaviour.temporal import fit_temporal
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.errors import FommError
from fomm_kp.tracks import Tracks

__all__ = ["fit_classifier", "fit_from_clips"]

log = logging.getLogger(__name__)

Labels = Union[np.ndarray, list[Segment]]  # one label per window, or the segments of the source's video


def _as_features(source: Source, config: FeatureConfig | None) -> Features:
    if isinstance(source, Features):
        return source
    if isinstance(source, Tracks):
        return motion_features(source, config)
    raise FommError(f"expected Tracks or Features, got {type(source).__name__}")


def _training_pairs(
    data: Source | Sequence[Source], labels: str | os.PathLike | Sequence[Segment] | Sequence[str] | np.ndarray
) -> list[tuple[Source, Labels]]:
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
            by_video.setdefault(video_key(s.video), []).append(s)
        pairs = []
        for src in sources:
            key = video_key(src.video)
            if key in by_video:
                pairs.append((src, by_video[key]))
        if not pairs:
            raise FommError(
                f"no labelled segment names a given video: labels name {sorted(by_video)[:5]}, "
                f"data comes from {[video_key(s.video) for s in sources][:5]} (matched by file name without extension)"
            )
        unused = set(by_video) - {video_key(s.video) for s, _ in pairs}
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
    options = options or ClassifierOptions()
    return _fit(_training_pairs(data, labels), kind, config, options)


def _fit(pairs: list[tuple[Source, Labels]], kind: str, config: FeatureConfig | None,
         options: ClassifierOptions) -> Classifier:
    """Fit a classifier of ``kind`` on sources with their labels: segments of the source's video, or
    one label per window of a feature table ("" = unlabelled)."""
    if kind not in KINDS:
        raise FommError(f"unknown classifier kind '{kind}': use one of {', '.join(KINDS)}")
    tracks_given = [src for src, _ in pairs if isinstance(src, Tracks)]
    if tracks_given:
        config = resolve_config(tracks_given, config)
    if kind == TEMPORAL:
        if any(not isinstance(src, Tracks) or isinstance(lab, np.ndarray) for src, lab in pairs):
            raise FommError("a temporal classifier learns from Tracks with labelled segments, "
                            "not from a feature table or per-window labels")
        return fit_temporal(pairs, config or FeatureConfig(), options)
    xs, ys = [], []
    names: tuple[str, ...] | None = None
    feature_config: dict = {}
    for src, lab in pairs:
        feats = _as_features(src, config)
        names = names or feats.names
        if feats.names != names:
            raise FommError(f"features of {feats.video or 'a source'} have different columns from the first source "
                            "(mixed keypoint sets or settings)")
        feature_config = feature_config or feats.config
        win = lab if isinstance(lab, np.ndarray) else window_labels(feats.start_frames, feats.end_frames, lab)
        if len(win) != feats.num_windows:
            raise FommError(f"{len(win)} window labels for {feats.num_windows} windows")
        keep = np.array([bool(v) for v in win], dtype=bool) & feats.has_data()
        xs.append(feats.values[keep])
        ys += [str(v) for v in win[keep]]
    if not ys:
        raise FommError("no labelled window has keypoint data (the labels miss the tracks, or every point is missing)")
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
    pairs: list[tuple[Source, Labels]] = []
    for label, clip in items:
        if isinstance(clip, Tracks):  # one segment over the whole clip: every window takes its label
            pairs.append((clip, [Segment(clip.video, int(clip.frame_indices[0]), int(clip.frame_indices[-1]), label)]))
        else:
            pairs.append((clip, np.full(clip.num_windows, label, dtype=object)))
    return _fit(pairs, kind, config, options or ClassifierOptions())
