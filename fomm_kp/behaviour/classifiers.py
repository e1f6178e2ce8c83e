"""Few-shot behaviour classifiers over window features: the :class:`Classifier` record, its kinds,
and saving it.

Kinds, each a pair of plain functions in :data:`WINDOW_KINDS` (to add a kind, add a pair):

- ``prototype``: nearest class mean of standardised features; probabilities from a softmax of
  squared distances scaled by the within-class spread of the training windows.
- ``knn``: k nearest training windows (distance-weighted votes).
- ``logistic``: multinomial logistic regression (scikit-learn fits; prediction is plain numpy).
- ``temporal``: a small dilated 1-D convolutional network over the per-frame signals of each
  window (:mod:`fomm_kp.behaviour.temporal`), which predicts from tracks rather than features.

A classifier is saved as ``.npz`` arrays plus JSON text; it is never pickled.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write, check_regular
from fomm_kp.settings import SEED, check, flag, integer, number

__all__ = [
    "KINDS", "TEMPORAL", "WINDOW_KINDS", "ClassifierOptions", "Classifier", "fit_window_classifier",
    "feature_standardisation", "signed_log", "fisher_weights", "softmax", "save_classifier", "load_classifier",
]

log = logging.getLogger(__name__)

_FORMAT = "fomm_kp.classifier/1"
CLIP = 8.0  # standardised feature values are clipped to +-CLIP so one wild value cannot dominate


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
        check(self, signed_log=flag(), fisher_weights=flag(), knn_k=integer(1), logistic_c=number(above=0.0),
              temporal_steps=integer(1), temporal_hidden=integer(1), temporal_lr=number(above=0.0), seed=SEED)


def softmax(logits: np.ndarray) -> np.ndarray:
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
        feature_config: the :class:`~fomm_kp.behaviour.windows.FeatureConfig` (as data) that made the
            training features.
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

    @property
    def temporal(self) -> bool:
        """Whether it predicts from tracks (per-frame signals) rather than from a feature table."""
        return self.kind == TEMPORAL

    def standardise(self, x: np.ndarray) -> np.ndarray:
        """``(W, F)`` raw features → (signed log when fitted so) standardised, clipped, NaN → 0."""
        x = np.asarray(x, dtype=np.float64)
        if self.params.get("signed_log", False):
            x = signed_log(x)
        z = (x - self.mean) / self.scale
        return np.clip(np.nan_to_num(z, nan=0.0, posinf=CLIP, neginf=-CLIP), -CLIP, CLIP)

    def weights(self, n: int) -> np.ndarray:
        """Per-feature weights of the distance kinds (ones when fitted without them)."""
        return self.arrays["weights"] if "weights" in self.arrays else np.ones(n)

    def predict_proba_features(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(W, C)`` of raw window features ``x (W, F)`` (not for ``temporal``)."""
        if self.temporal:
            raise FommError("a temporal classifier predicts from tracks, not from a feature table")
        return WINDOW_KINDS[self.kind].predict(self, self.standardise(x))


# --------------------------------------------------------------------------------------------
# The window kinds: fit on standardised windows z (W, F) with class indices (W,); predict (W, C).

Fitted = tuple[dict[str, np.ndarray], dict]  # kind-specific arrays and parameters


def _fit_prototype(z: np.ndarray, target: np.ndarray, options: ClassifierOptions, weights: np.ndarray | None) -> Fitted:
    protos = np.stack([z[target == c].mean(axis=0) for c in range(int(target.max()) + 1)])
    w = weights if weights is not None else np.ones(z.shape[1])
    spread = float((((z - protos[target]) ** 2) * w).mean())
    arrays = {"prototypes": protos} | ({} if weights is None else {"weights": weights})
    return arrays, {"spread": spread if spread > 1e-6 else 1.0}


def _predict_prototype(clf: Classifier, z: np.ndarray) -> np.ndarray:
    d2 = (((z[:, None, :] - clf.arrays["prototypes"][None]) ** 2) * clf.weights(z.shape[1])).mean(axis=2)
    return softmax(-d2 / (2.0 * float(clf.params["spread"])))


def _fit_knn(z: np.ndarray, target: np.ndarray, options: ClassifierOptions, weights: np.ndarray | None) -> Fitted:
    arrays = {"train_x": z, "train_y": target} | ({} if weights is None else {"weights": weights})
    return arrays, {"k": options.knn_k}


def _predict_knn(clf: Classifier, z: np.ndarray) -> np.ndarray:
    train, labels = clf.arrays["train_x"], clf.arrays["train_y"].astype(np.int64)
    k = min(int(clf.params["k"]), len(train))
    root_w = np.sqrt(clf.weights(z.shape[1]))
    a, b = z * root_w, train * root_w
    d2 = np.maximum((a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T, 0.0)
    nearest = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < len(train) else np.argsort(d2, axis=1)[:, :k]
    weights = 1.0 / (np.take_along_axis(d2, nearest, axis=1) / z.shape[1] + 1e-3)
    probs = np.zeros((len(z), clf.num_classes))
    np.add.at(probs, (np.repeat(np.arange(len(z)), k), labels[nearest].ravel()), weights.ravel())
    return probs / probs.sum(axis=1, keepdims=True)


def _fit_logistic(z: np.ndarray, target: np.ndarray, options: ClassifierOptions, weights: np.ndarray | None) -> Fitted:
    model = LogisticRegression(C=options.logistic_c, max_iter=2000, class_weight="balanced", random_state=options.seed)
    model.fit(z, target)
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # binary: sigmoid(w.x + b) == softmax([0, w.x + b])
        coef = np.concatenate([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return {"coef": coef, "intercept": intercept}, {"C": options.logistic_c}


def _predict_logistic(clf: Classifier, z: np.ndarray) -> np.ndarray:
    return softmax(z @ clf.arrays["coef"].T + clf.arrays["intercept"])


class WindowKind(NamedTuple):
    """How one kind fits (``z``, class indices, options, Fisher weights or None → arrays, params) and
    predicts (classifier, ``z`` → probabilities ``(W, C)``); ``weighted``: it uses Fisher weights."""

    fit: Callable[[np.ndarray, np.ndarray, ClassifierOptions, np.ndarray | None], Fitted]
    predict: Callable[[Classifier, np.ndarray], np.ndarray]
    weighted: bool


WINDOW_KINDS = {
    "prototype": WindowKind(_fit_prototype, _predict_prototype, True),
    "knn": WindowKind(_fit_knn, _predict_knn, True),
    "logistic": WindowKind(_fit_logistic, _predict_logistic, False),
}
TEMPORAL = "temporal"
KINDS = (*WINDOW_KINDS, TEMPORAL)


def fit_window_classifier(
    x: np.ndarray, y: Sequence[str], names: tuple[str, ...], kind: str, options: ClassifierOptions, feature_config: dict
) -> Classifier:
    """Fit a window classifier on raw features ``x (W, F)`` with one label per window ``y``."""
    if kind not in WINDOW_KINDS:
        raise FommError(f"unknown window classifier kind '{kind}': use one of {', '.join(WINDOW_KINDS)}")
    classes = tuple(sorted(set(y)))
    if len(classes) < 2:
        raise FommError(f"need examples of at least 2 behaviours, got {list(classes)} (check the labels and the window length)")
    target = np.array([classes.index(v) for v in y], dtype=np.int64)
    x = np.asarray(x, dtype=np.float64)
    common = {"signed_log": bool(options.signed_log)}
    mean, scale = feature_standardisation(signed_log(x) if options.signed_log else x)
    z = Classifier(kind, classes, names, mean, scale, params=common).standardise(x)
    counts = np.bincount(target, minlength=len(classes))
    log.info("fitting a %s classifier on %d windows: %s", kind, len(z), dict(zip(classes, counts.tolist())))
    method = WINDOW_KINDS[kind]
    weights = fisher_weights(z, target, len(classes)) if options.fisher_weights and method.weighted else None
    arrays, params = method.fit(z, target, options, weights)
    return Classifier(kind, classes, names, mean, scale, arrays, common | params, feature_config)


# --------------------------------------------------------------------------------------------
# Saving


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
    path = check_regular(path, "classifier")
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
    except (KeyError, ValueError, OSError, EOFError, TypeError, AttributeError) as exc:
        raise FommError(f"{path} is not a fomm_kp classifier: {exc}") from exc
