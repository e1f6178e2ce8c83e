"""How well behaviour is told apart from a few examples: episodes, leave-one-out, a pixel baseline.

The unit of evaluation is a labelled clip (:class:`~fomm_kp.evaluation.clips.Clip`): the windows of one example of one
behaviour. Few-shot protocol (:func:`run_episodes`): for each of many random draws, pick N
behaviours that have at least K + 1 clips, K of them per behaviour as the support set, the others
as queries; fit a classifier on the support windows; label each query clip by the class with the
highest mean window log-probability. Report mean ± sd of accuracy and macro-F1 over draws, and the
summed confusion matrix. :func:`leave_one_group_out` trains on every clip outside one group
(e.g. one video) and tests on that group.

The pixel baseline needs no keypoints: frame-difference motion energy (mean absolute grey-level
change) in a grid of cells over the same windows (:func:`fomm_kp.evaluation.clips.motion_energy_features`), fed to the same
classifiers, so keypoint features are always compared with something that needs no detector.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.metrics import f1_score

from fomm_kp.behaviour.classifiers import ClassifierOptions, fit_window_classifier
from fomm_kp.behaviour.plots import plot_confusion
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.errors import FommError
from fomm_kp.evaluation.clips import Clip, check_clip_videos, keypoint_clips, pixel_clips, read_clip_table
from fomm_kp.files import atomic_write, staged_folder

__all__ = ["EpisodeResult", "run_episodes", "leave_one_group_out", "evaluate_clip_set", "evaluate_behaviour"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpisodeResult:
    """Summary of a few-shot evaluation.

    Attributes:
        accuracy_mean, accuracy_sd: clip accuracy over episodes.
        macro_f1_mean, macro_f1_sd: macro-F1 over the episode's classes, over episodes.
        window_accuracy_mean: accuracy of single windows (before clip averaging).
        episodes: number of draws; n_way, k_shot: the protocol.
        classes: all class names (rows/columns of ``confusion``).
        confusion: ``(C, C)`` counts summed over episodes, row = true class.
    """

    accuracy_mean: float
    accuracy_sd: float
    macro_f1_mean: float
    macro_f1_sd: float
    window_accuracy_mean: float
    episodes: int
    n_way: int
    k_shot: int
    classes: tuple[str, ...]
    confusion: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {
            "accuracy_mean": self.accuracy_mean,
            "accuracy_sd": self.accuracy_sd,
            "macro_f1_mean": self.macro_f1_mean,
            "macro_f1_sd": self.macro_f1_sd,
            "window_accuracy_mean": self.window_accuracy_mean,
            "episodes": self.episodes,
            "n_way": self.n_way,
            "k_shot": self.k_shot,
            "classes": list(self.classes),
            "confusion": self.confusion.tolist(),
        }


# --------------------------------------------------------------------------------------------
# Pixel baseline
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------------


def _fit_predict(train: Sequence[Clip], test: Sequence[Clip], kind: str, options: ClassifierOptions
                 ) -> tuple[list[str], list[np.ndarray], tuple[str, ...]]:
    """Fit on the windows of ``train``; return each test clip's predicted label and window probabilities."""
    names = train[0].features.names
    x = np.concatenate([c.features.values for c in train])
    y = [c.label for c in train for _ in range(c.features.num_windows)]
    clf = fit_window_classifier(x, y, names, kind, options, train[0].features.config)
    predicted, window_probs = [], []
    for clip in test:
        probs = clf.predict_proba_features(clip.features.columns(names))
        window_probs.append(probs)
        # the clip's label: highest mean log-probability over its windows (for the prototype
        # classifier this is the class nearest to the clip's mean feature vector)
        predicted.append(clf.classes[int(np.argmax(np.log(np.maximum(probs, 1e-300)).mean(axis=0)))])
    return predicted, window_probs, clf.classes


def _check_clips(clips: Sequence[Clip]) -> tuple[str, ...]:
    if not clips:
        raise FommError("no clips to evaluate")
    names = clips[0].features.names
    for c in clips:
        if c.features.names != names:
            raise FommError(f"clip '{c.label}' from '{c.group}' has different feature columns")
        if c.features.num_windows == 0:
            raise FommError(f"clip '{c.label}' from '{c.group}' has no windows")
    return tuple(sorted({c.label for c in clips}))


def _draw(rng: np.random.Generator, clips: Sequence[Clip], by_class: dict[str, list[int]], eligible: list[str],
          n: int, k_shot: int, max_queries: int | None) -> tuple[list[str], list[Clip], list[Clip]]:
    """One episode: ``n`` behaviours, ``k_shot`` support clips of each and (up to ``max_queries``) queries."""
    chosen = sorted(rng.choice(eligible, size=n, replace=False).tolist())
    support, query = [], []
    for c in chosen:
        order = rng.permutation(by_class[c])
        support += [clips[i] for i in order[:k_shot]]
        rest = order[k_shot:] if max_queries is None else order[k_shot:k_shot + max_queries]
        query += [clips[i] for i in rest]
    return chosen, support, query


def run_episodes(
    clips: Sequence[Clip],
    k_shot: int,
    n_way: int | None = None,
    episodes: int = 200,
    kind: str = "prototype",
    seed: int = 0,
    max_queries: int | None = None,
    options: ClassifierOptions | None = None,
) -> EpisodeResult:
    """N-way K-shot episodes over labelled clips (see the module docstring).

    Args:
        clips: labelled examples; a behaviour takes part only with at least ``k_shot + 1`` clips.
        k_shot: support clips per behaviour.
        n_way: behaviours per episode (None = all eligible).
        episodes: random draws (same ``seed`` gives the same draws for any feature type, so two
            feature sets are compared on identical splits).
        kind: classifier kind (``prototype``, ``knn``, ``logistic``).
        max_queries: cap on query clips per behaviour (None = all the rest).
    """
    classes = _check_clips(clips)
    options = options or ClassifierOptions()
    by_class = {c: [i for i, clip in enumerate(clips) if clip.label == c] for c in classes}
    eligible = [c for c in classes if len(by_class[c]) >= k_shot + 1]
    n = len(eligible) if n_way is None else n_way
    if n < 2 or len(eligible) < n:
        raise FommError(
            f"{k_shot}-shot episodes need {max(n, 2)} behaviours with at least {k_shot + 1} clips; {len(eligible)} have that"
        )
    rng = np.random.default_rng(seed)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    accs, f1s, waccs = [], [], []
    for _ in range(episodes):
        chosen, support, query = _draw(rng, clips, by_class, eligible, n, k_shot, max_queries)
        predicted, window_probs, fitted = _fit_predict(support, query, kind, options)
        truth = [q.label for q in query]
        accs.append(float(np.mean([p == t for p, t in zip(predicted, truth)])))
        f1s.append(float(f1_score(truth, predicted, labels=chosen, average="macro", zero_division=0)))
        hits = [np.mean(np.asarray(fitted)[np.argmax(p, axis=1)] == t) for p, t in zip(window_probs, truth)]
        waccs.append(float(np.mean(hits)))
        for p, t in zip(predicted, truth):
            confusion[classes.index(t), classes.index(p)] += 1
    return EpisodeResult(
        accuracy_mean=float(np.mean(accs)), accuracy_sd=float(np.std(accs)), macro_f1_mean=float(np.mean(f1s)),
        macro_f1_sd=float(np.std(f1s)), window_accuracy_mean=float(np.mean(waccs)), episodes=episodes, n_way=n,
        k_shot=k_shot, classes=classes, confusion=confusion,
    )


def leave_one_group_out(clips: Sequence[Clip], kind: str = "prototype", options: ClassifierOptions | None = None) -> dict:
    """Train on all clips outside a group, test on the group's clips, for every group.

    Returns ``{"accuracy", "macro_f1", "per_group": {group: accuracy}, "classes", "confusion"}``;
    a group whose removal leaves some of its behaviours without training clips is still tested
    (those clips cannot be right), which is what leave-one-video-out means with few videos.
    """
    classes = _check_clips(clips)
    groups = sorted({c.group for c in clips})
    if len(groups) < 2:
        raise FommError(f"leave-one-group-out needs at least 2 groups, got {groups}")
    options = options or ClassifierOptions()
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    truth_all, pred_all, per_group = [], [], {}
    for g in groups:
        train = [c for c in clips if c.group != g]
        test = [c for c in clips if c.group == g]
        if len({c.label for c in train}) < 2:
            raise FommError(f"leaving out '{g}' leaves fewer than 2 behaviours to train on")
        predicted, _, _ = _fit_predict(train, test, kind, options)
        truth = [c.label for c in test]
        per_group[g] = float(np.mean([p == t for p, t in zip(predicted, truth)]))
        truth_all += truth
        pred_all += predicted
        for p, t in zip(predicted, truth):
            confusion[classes.index(t), classes.index(p)] += 1
    return {
        "accuracy": float(np.mean([p == t for p, t in zip(pred_all, truth_all)])),
        "macro_f1": float(f1_score(truth_all, pred_all, labels=list(classes), average="macro", zero_division=0)),
        "per_group": per_group,
        "classes": list(classes),
        "confusion": confusion.tolist(),
    }


# --------------------------------------------------------------------------------------------
# A labelled-clip table on disk → clips → report
# --------------------------------------------------------------------------------------------


def evaluate_clip_set(
    clips: list[Clip], shots: Sequence[int], kinds: Sequence[str], episodes: int, seed: int,
    out_dir: str | os.PathLike, name: str, group_name: str = "group", title_prefix: str = "",
) -> dict:
    """K-shot episodes per classifier kind and shot count, plus leave-one-group-out, for one feature set.

    Writes a confusion PNG per kind and shot count into ``out_dir``; returns
    ``{"<kind>/<k>-shot": {...}, "<kind>/leave-one-<group_name>-out": {...}}``. A shot count (or a
    leave-one-out) that the clips do not allow is recorded as skipped.
    """
    out = Path(out_dir)
    res: dict = {}
    for kind in kinds:
        for k in shots:
            key = f"{kind}/{k}-shot"
            try:
                r = run_episodes(clips, k_shot=k, episodes=episodes, kind=kind, seed=seed)
            except FommError as exc:
                res[key] = {"skipped": str(exc)}
                continue
            res[key] = r.to_dict()
            plot_confusion(r.confusion, r.classes, out / f"confusion_{name}_{kind}_{k}shot.png",
                           title=f"{title_prefix}{r.n_way}-way {k}-shot, {name} features, {kind} ({episodes} episodes)")
        if len({c.group for c in clips}) >= 2:
            key = f"{kind}/leave-one-{group_name}-out"
            try:
                res[key] = leave_one_group_out(clips, kind=kind)
            except FommError as exc:
                res[key] = {"skipped": str(exc)}
    return res


def evaluate_behaviour(
    table: str | os.PathLike,
    out_dir: str | os.PathLike,
    tracks_dir: str | os.PathLike | None = None,
    pixel: bool = True,
    keypoints: bool = True,
    shots: Sequence[int] = (1, 2, 4),
    episodes: int = 200,
    kinds: Sequence[str] = ("prototype",),
    seed: int = 0,
    config: FeatureConfig | None = None,
) -> dict:
    """Episodes (and leave-one-group-out) for keypoint features and the pixel baseline on a clip table.

    Writes ``results.json`` and a confusion PNG per feature set, classifier and shot count into
    ``out_dir``; returns the results (``{feature_set: {"<kind>/<k>-shot": {...}, ...}}``). A shot
    count that too few behaviours allow is recorded as skipped.
    """
    table = Path(table)
    rows = read_clip_table(table)
    config = config or FeatureConfig()
    if pixel:
        check_clip_videos(rows, table.parent)
    sets: dict[str, list[Clip]] = {}
    if keypoints:
        sets["keypoints"] = keypoint_clips(rows, table.parent, tracks_dir, config)
    if pixel:
        sets["pixel"] = pixel_clips(rows, table.parent, config)
    if not sets:
        raise FommError("nothing to evaluate: keypoints and pixel baseline are both off")
    results: dict = {"table": str(table), "clips": len(rows), "feature_config": config.to_dict()}
    with staged_folder(out_dir) as out:  # written beside out_dir and moved in at the end
        for name, clips in sets.items():
            results[name] = evaluate_clip_set(clips, shots, kinds, episodes, seed, out, name)
        atomic_write(out / "results.json", lambda tmp: tmp.write_text(json.dumps(results, indent=2)))
    return results
