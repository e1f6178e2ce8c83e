"""Accuracy of discovered keypoints against hand labels, with the protocol of unsupervised-keypoint
papers (Jakab et al. 2018; BKinD 2022) and the baselines a lab without a model would use.

Keypoint evaluation (pure numpy, :func:`evaluate_keypoints`):

- **full regression**: ridge regression (intercept; penalty chosen by leave-one-out on the training
  folds) from all K discovered keypoints (optionally with their confidences) to each labelled part,
  k-fold cross-validated; error = mean Euclidean pixel distance on the held-out frames.
- **best single keypoint**: per labelled part, the one discovered keypoint whose k-fold affine fit
  (``part ≈ A·kp + b``) predicts it best, the keypoint chosen on the training folds only. With few
  labelled frames of one clip the full regression rewards any appearance feature; a keypoint that
  really follows a part is what this measures.
- baselines in the same harness: **mean pose** (the training folds' mean), **blob moments**
  (centroid and principal-axis ends of the foreground, :func:`fomm_kp.localize.blob_moments`),
  **blob centroid** alone, and an **8×8 grey thumbnail** of the whole frame.

Folds are shuffled (seeded) or contiguous blocks (for consecutive frames, where neighbours leak).
:func:`evaluate_model_on_labels` runs a model and the baselines on labelled images.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

import numpy as np

from fomm_kp.errors import FommError

if TYPE_CHECKING:
    from fomm_kp.evaluation.labels import LabelledFrames
    from fomm_kp.localize.boxes import Background, LocalizeConfig
    from fomm_kp.tracks import Tracks

__all__ = [
    "PoseFeatures",
    "MethodResult",
    "KeypointEvaluation",
    "kfold_indices",
    "ridge_cv_predict",
    "affine_cv_predict",
    "part_errors",
    "regression_errors",
    "single_keypoint_errors",
    "mean_pose_errors",
    "evaluate_keypoints",
    "thumbnails",
    "baseline_features",
    "detect_keypoints",
    "model_boxes",
    "untrained_like",
    "evaluate_model_on_labels",
    "labelled_images",
    "track_features",
    "evaluate_labels",
    "save_evaluation",
]

log = logging.getLogger(__name__)

FoldMode = Literal["shuffled", "blocks"]
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-4, 4, 17))


# ----------------------------------------------------------------------------------------------
# Folds and fits


def kfold_indices(num_samples: int, folds: int = 5, mode: FoldMode = "shuffled", seed: int = 0) -> list[np.ndarray]:
    """Test indices of each fold: ``folds`` disjoint arrays covering ``range(num_samples)``.

    ``shuffled``: a seeded random permutation split in near-equal parts; ``blocks``: contiguous
    runs (frame order kept), so that neighbouring frames rarely sit on both sides of a split.
    """
    if folds < 2:
        raise FommError(f"need at least 2 folds, got {folds}")
    if num_samples < folds:
        raise FommError(f"{num_samples} labelled frames are too few for {folds}-fold cross-validation")
    if mode == "shuffled":
        order = np.random.default_rng(seed).permutation(num_samples)
    elif mode == "blocks":
        order = np.arange(num_samples)
    else:
        raise FommError(f"unknown fold mode '{mode}' (use 'shuffled' or 'blocks')")
    return [np.sort(part) for part in np.array_split(order, folds)]


def _train_mask(num_samples: int, test: np.ndarray) -> np.ndarray:
    mask = np.ones(num_samples, dtype=bool)
    mask[test] = False
    return mask


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill NaN with the training column mean, then z-score with training statistics."""
    finite = np.isfinite(train)
    count = finite.sum(axis=0)
    mean = np.where(count > 0, np.where(finite, train, 0.0).sum(axis=0) / np.maximum(count, 1), 0.0)
    train = np.where(np.isfinite(train), train, mean)
    test = np.where(np.isfinite(test), test, mean)
    std = train.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def _ridge_fit(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> tuple[np.ndarray, np.ndarray, float]:
    """Ridge with intercept on standardised ``x`` (n, F) → ``y`` (n, D); the penalty minimises the
    closed-form leave-one-out squared error. Returns (coefficients (F, D), intercept (D,), alpha)."""
    y_mean = y.mean(axis=0)
    x_mean = x.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    n = len(x)
    best: tuple[float, float] | None = None
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink[:, None] * uty)
        hat = (u**2) @ shrink + 1.0 / n
        loo = (yc - fitted) / np.maximum(1.0 - hat, 1e-6)[:, None]
        score = float(np.mean(loo**2))
        if best is None or score < best[0] - 1e-12:
            best = (score, alpha)
    alpha = best[1]
    coef = vt.T @ ((s / (s**2 + alpha))[:, None] * uty)
    return coef, y_mean - x_mean @ coef, alpha


def ridge_cv_predict(
    features: np.ndarray, targets: np.ndarray, folds: Sequence[np.ndarray], alphas: Sequence[float] = RIDGE_ALPHAS
) -> np.ndarray:
    """Cross-validated ridge predictions: float64 ``(M, D)`` from ``features`` ``(M, F)`` (NaN
    allowed: filled with the training mean) and ``targets`` ``(M, D)`` (rows with any NaN target
    are left out of training). Each fold's rows are predicted by a model fitted on the others."""
    features = np.asarray(features, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if features.ndim != 2 or targets.ndim != 2 or len(features) != len(targets):
        raise FommError(f"ridge_cv_predict: features (M, F) and targets (M, D), got {features.shape}, {targets.shape}")
    m = len(features)
    predictions = np.full(targets.shape, np.nan)
    usable = np.all(np.isfinite(targets), axis=1)
    for test in folds:
        train = _train_mask(m, test) & usable
        if train.sum() < 2:
            raise FommError("a training fold has fewer than 2 labelled frames")
        if features.shape[1] == 0:
            predictions[test] = targets[train].mean(axis=0)
            continue
        x_train, x_test = _standardise(features[train], features[test])
        coef, intercept, _ = _ridge_fit(x_train, targets[train], alphas)
        predictions[test] = x_test @ coef + intercept
    return predictions


def affine_cv_predict(points: np.ndarray, targets: np.ndarray, folds: Sequence[np.ndarray]) -> np.ndarray:
    """Cross-validated affine map ``target ≈ A·point + b`` (least squares), float64 ``(M, 2)``.

    ``points`` ``(M, 2)`` and ``targets`` ``(M, 2)``; rows with NaN are left out of training; a
    test row whose point is NaN is predicted by the training mean target (a miss costs)."""
    points = np.asarray(points, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if points.shape != targets.shape or points.ndim != 2 or points.shape[1] != 2:
        raise FommError(f"affine_cv_predict: points and targets must both be (M, 2), got {points.shape}, {targets.shape}")
    predictions = np.full(points.shape, np.nan)
    labelled = np.all(np.isfinite(targets), axis=1)
    for test in folds:
        train = _train_mask(len(points), test) & labelled
        predictions[test] = _affine_fit_predict(points[train], targets[train], points[test])
    return predictions


def _affine_fit_predict(p_train: np.ndarray, y_train: np.ndarray, p_query: np.ndarray) -> np.ndarray:
    """Fit ``y ≈ [p, 1]·C`` on training rows whose point is finite; predict the query rows (the
    training mean target where the query point is NaN)."""
    found = np.all(np.isfinite(p_train), axis=1)
    if found.sum() < 3:
        raise FommError("an affine fit needs at least 3 training frames with the point found")
    design = np.concatenate([p_train[found], np.ones((int(found.sum()), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(design, y_train[found], rcond=None)
    query_found = np.all(np.isfinite(p_query), axis=1)
    out = np.tile(y_train.mean(axis=0), (len(p_query), 1))
    out[query_found] = np.concatenate([p_query[query_found], np.ones((int(query_found.sum()), 1))], axis=1) @ coef
    return out


def part_errors(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean Euclidean distance per part: ``predictions``, ``labels`` ``(M, P, 2)`` → ``(P,)``;
    frames where a label is NaN are skipped (NaN for a part never labelled)."""
    distance = np.linalg.norm(np.asarray(predictions, np.float64) - np.asarray(labels, np.float64), axis=-1)
    labelled = np.all(np.isfinite(labels), axis=-1)
    out = np.full(distance.shape[1], np.nan)
    for p in range(distance.shape[1]):
        if labelled[:, p].any():
            out[p] = float(np.mean(distance[labelled[:, p], p]))
    return out


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 3 or labels.shape[2] != 2:
        raise FommError(f"labels must have shape (M, P, 2), got {labels.shape}")
    return labels


def regression_errors(features: np.ndarray, labels: np.ndarray, folds: Sequence[np.ndarray]) -> np.ndarray:
    """k-fold ridge regression from ``features`` ``(M, F)`` to each part of ``labels`` ``(M, P, 2)``
    separately; returns the held-out error per part ``(P,)`` in pixels."""
    labels = _check_labels(labels)
    predictions = np.full(labels.shape, np.nan)
    for p in range(labels.shape[1]):
        predictions[:, p] = ridge_cv_predict(features, labels[:, p], folds)
    return part_errors(predictions, labels)


def mean_pose_errors(labels: np.ndarray, folds: Sequence[np.ndarray]) -> np.ndarray:
    """Error per part ``(P,)`` of predicting each held-out part by its training-fold mean."""
    labels = _check_labels(labels)
    return regression_errors(np.zeros((len(labels), 0)), labels, folds)


def single_keypoint_errors(
    keypoints: np.ndarray, labels: np.ndarray, folds: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Per labelled part, the held-out error of the best single keypoint under an affine fit.

    In each fold the keypoint with the lowest training-fold residual is chosen (no peeking at the
    held-out frames), fitted on the training folds and evaluated on the held-out fold.

    Args:
        keypoints: ``(M, K, 2)`` discovered keypoints (NaN where missing).
        labels: ``(M, P, 2)``.
    Returns:
        errors ``(P,)`` in pixels; best ``(P,)`` the keypoint index chosen most often across folds.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    labels = _check_labels(labels)
    if keypoints.ndim != 3 or keypoints.shape[2] != 2 or len(keypoints) != len(labels):
        raise FommError(f"keypoints must have shape (M, K, 2) with M = {len(labels)}, got {keypoints.shape}")
    m, k = keypoints.shape[:2]
    predictions = np.full(labels.shape, np.nan)
    chosen = np.zeros((labels.shape[1], k), dtype=np.int64)
    for test in folds:
        for p in range(labels.shape[1]):
            target = labels[:, p]
            train = _train_mask(m, test) & np.all(np.isfinite(target), axis=1)
            residuals = np.full(k, np.inf)
            for j in range(k):
                if np.all(np.isfinite(keypoints[train, j]), axis=1).sum() >= 3:
                    fitted = _affine_fit_predict(keypoints[train, j], target[train], keypoints[train, j])
                    residuals[j] = np.mean(np.linalg.norm(fitted - target[train], axis=1))
            if not np.isfinite(residuals).any():
                raise FommError("no keypoint was found in enough training frames for an affine fit")
            best = int(np.argmin(residuals))
            chosen[p, best] += 1
            predictions[test, p] = _affine_fit_predict(keypoints[train, best], target[train], keypoints[test, best])
    return part_errors(predictions, labels), np.argmax(chosen, axis=1)


# ----------------------------------------------------------------------------------------------
# The harness


@dataclass(frozen=True, eq=False)
class PoseFeatures:
    """What a method offers for M labelled frames.

    Attributes:
        points: ``(M, K, 2)`` points in frame pixels (keypoints, blob centroid/ends) or None.
        confidence: ``(M, K)`` per-point confidence (added to the regression features when the
            evaluation asks for it) or None.
        extra: ``(M, F)`` other regression features (a thumbnail) or None.
    """

    points: np.ndarray | None = None
    confidence: np.ndarray | None = None
    extra: np.ndarray | None = None

    def regression_features(self, use_confidence: bool) -> np.ndarray:
        """``(M, F)``: flattened points, then confidences (if asked and present), then extras."""
        blocks = []
        if self.points is not None:
            blocks.append(np.asarray(self.points, np.float64).reshape(len(self.points), -1))
        if use_confidence and self.confidence is not None:
            blocks.append(np.asarray(self.confidence, np.float64))
        if self.extra is not None:
            blocks.append(np.asarray(self.extra, np.float64))
        if not blocks:
            raise FommError("PoseFeatures without points or extra features")
        return np.concatenate(blocks, axis=1)

    def __len__(self) -> int:
        source = self.points if self.points is not None else self.extra
        return 0 if source is None else len(source)


@dataclass(frozen=True, eq=False)
class MethodResult:
    """Held-out errors of one method, pixels per labelled part.

    Attributes:
        regression: ``(P,)`` full-regression error (None for methods evaluated otherwise).
        single: ``(P,)`` best-single-point affine error (None without points).
        single_index: ``(P,)`` index of the point chosen for each part (most often across folds).
        missing_frames: frames where the method found nothing (NaN points).
    """

    regression: np.ndarray | None
    single: np.ndarray | None = None
    single_index: np.ndarray | None = None
    missing_frames: int = 0


@dataclass(frozen=True, eq=False)
class KeypointEvaluation:
    """The table: methods × labelled parts, in pixels, with the protocol that produced it."""

    part_names: tuple[str, ...]
    num_frames: int
    folds: int
    fold_mode: str
    use_confidence: bool
    results: dict[str, MethodResult]
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (NaN → null)."""

        def clean(values: np.ndarray | None) -> dict[str, float | None] | None:
            if values is None:
                return None
            per_part = {n: (float(v) if np.isfinite(v) else None) for n, v in zip(self.part_names, values)}
            finite = [v for v in values if np.isfinite(v)]
            per_part["mean"] = float(np.mean(finite)) if finite else None
            return per_part

        return {
            "protocol": {
                "num_frames": self.num_frames,
                "folds": self.folds,
                "fold_mode": self.fold_mode,
                "use_confidence": self.use_confidence,
                "error": "mean Euclidean distance on held-out frames, pixels",
            },
            "parts": list(self.part_names),
            "methods": {
                name: {
                    "regression": clean(r.regression),
                    "best_single": clean(r.single),
                    "best_single_index": None if r.single_index is None else {
                        n: int(i) for n, i in zip(self.part_names, r.single_index)
                    },
                    "missing_frames": r.missing_frames,
                }
                for name, r in self.results.items()
            },
            "notes": self.notes,
        }

    def table(self) -> str:
        """A fixed-width text table: one row per method, regression and best-single blocks."""
        names = list(self.part_names) + ["mean"]
        width = max(8, *(len(n) + 1 for n in names))
        name_width = max(12, *(len(n) + 2 for n in self.results))

        def cells(values: np.ndarray | None) -> str:
            if values is None:
                return "".join(f"{'-':>{width}}" for _ in names)
            finite = values[np.isfinite(values)]
            row = list(values) + [float(np.mean(finite)) if len(finite) else np.nan]
            return "".join(f"{v:>{width}.1f}" if np.isfinite(v) else f"{'nan':>{width}}" for v in row)

        header_parts = "".join(f"{n:>{width}}" for n in names)
        lines = [
            f"{self.folds}-fold ({self.fold_mode}) error in pixels on {self.num_frames} labelled frames",
            f"{'':<{name_width}}| {'full regression':<{width * len(names)}}| best single point (affine)",
            f"{'method':<{name_width}}| {header_parts}| {header_parts}",
            "-" * (name_width + 2 * (width * len(names) + 2)),
        ]
        for name, r in self.results.items():
            lines.append(f"{name:<{name_width}}| {cells(r.regression)}| {cells(r.single)}")
        return "\n".join(lines)


def evaluate_keypoints(
    labels: np.ndarray,
    methods: Mapping[str, PoseFeatures],
    part_names: Sequence[str] | None = None,
    folds: int = 5,
    fold_mode: FoldMode = "shuffled",
    seed: int = 0,
    use_confidence: bool = False,
    include_mean_pose: bool = True,
    notes: Mapping[str, Any] | None = None,
) -> KeypointEvaluation:
    """Score every method against ``labels`` ``(M, P, 2)`` with the same folds.

    Each method gets the full ridge regression from all its features, and (when it has points) the
    best-single-point affine error per part. ``mean pose`` is added first when
    ``include_mean_pose``. Pure numpy: no model or image needed.
    """
    labels = _check_labels(labels)
    m, p = labels.shape[:2]
    names = tuple(part_names) if part_names is not None else tuple(f"part{i}" for i in range(p))
    if len(names) != p:
        raise FommError(f"{p} labelled parts but {len(names)} part names")
    fold_list = kfold_indices(m, folds, fold_mode, seed)
    results: dict[str, MethodResult] = {}
    if include_mean_pose:
        results["mean pose"] = MethodResult(regression=mean_pose_errors(labels, fold_list))
    for name, method in methods.items():
        if len(method) != m:
            raise FommError(f"method '{name}' has features for {len(method)} frames, labels for {m}")
        regression = regression_errors(method.regression_features(use_confidence), labels, fold_list)
        single, index, missing = None, None, 0
        if method.points is not None:
            pts = np.asarray(method.points, dtype=np.float64)
            if pts.ndim != 3 or pts.shape[2] != 2:
                raise FommError(f"method '{name}': points must have shape (M, K, 2), got {pts.shape}")
            missing = int(np.sum(~np.all(np.isfinite(pts), axis=(1, 2))))
            single, index = single_keypoint_errors(pts, labels, fold_list)
        results[name] = MethodResult(regression, single, index, missing)
        log.info("%s: regression %.1f px, best single %s px", name, float(np.nanmean(regression)),
                 "-" if single is None else f"{float(np.nanmean(single)):.1f}")
    return KeypointEvaluation(names, m, folds, fold_mode, use_confidence, results, dict(notes or {}))


def save_evaluation(evaluation: KeypointEvaluation, path: str | os.PathLike) -> None:
    """Write :meth:`KeypointEvaluation.to_dict` as JSON (atomically)."""
    from fomm_kp.files import atomic_write

    text = json.dumps(evaluation.to_dict(), indent=2)

    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            handle.write(text + "\n")

    atomic_write(path, write)


# ----------------------------------------------------------------------------------------------
# Features from images and models


def thumbnails(frames: np.ndarray, size: int = 8) -> np.ndarray:
    """Grey ``size``×``size`` thumbnails of uint8 frames ``(M, H, W, 3)`` → float32 ``(M, size²)``
    in [0, 1] (area averaging over the whole frame)."""
    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise FommError(f"frames must have shape (M, H, W, 3), got {frames.shape}")
    out = np.empty((len(frames), size * size), dtype=np.float32)
    for i, frame in enumerate(frames):
        grey = Image.fromarray(frame).convert("L").resize((size, size), Image.BOX)
        out[i] = np.asarray(grey, dtype=np.float32).ravel() / 255.0
    return out


def baseline_features(frames: np.ndarray, background: Background, config: LocalizeConfig | None = None) -> dict[str, PoseFeatures]:
    """The model-free baselines for uint8 frames ``(M, H, W, 3)``: ``blob moments`` (centroid and
    both principal-axis ends of the whole foreground component, ends ordered by its skew),
    ``blob centroid`` alone and ``thumbnail 8x8``."""
    from fomm_kp.localize.boxes import LocalizeConfig, blob_moments

    # The whole foreground, tail and all: what a lab would measure without a model.
    config = LocalizeConfig(core_fraction=0.0) if config is None else config
    moments = np.stack([blob_moments(frame, background, config) for frame in frames])
    return {
        "blob moments": PoseFeatures(points=moments),
        "blob centroid": PoseFeatures(points=moments[:, :1]),
        "thumbnail 8x8": PoseFeatures(extra=thumbnails(frames)),
    }


def detect_keypoints(
    model: Any, frames: np.ndarray, boxes: np.ndarray | None = None, batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model.detect`` (a :class:`fomm_kp.inference.Model`) over uint8 frames ``(M, H, W, 3)``
    in batches, with optional crop boxes ``(M, 4)`` (or ``(M, 5)``, turned). Returns keypoints float32 ``(M, K, 2)`` in frame
    pixels and scores float32 ``(M, K)``."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise FommError(f"frames must be uint8 (M, H, W, 3), got {frames.dtype} {frames.shape}")
    if boxes is not None and np.shape(boxes) not in ((len(frames), 4), (len(frames), 5)):
        raise FommError(f"boxes must have shape ({len(frames)}, 4) or ({len(frames)}, 5), got {np.shape(boxes)}")
    keypoints, scores = [], []
    for start in range(0, len(frames), batch_size):
        stop = min(start + batch_size, len(frames))
        detections = model.detect(frames[start:stop], None if boxes is None else np.asarray(boxes[start:stop], np.float64))
        keypoints.append(np.asarray(detections.keypoints, dtype=np.float32))
        scores.append(np.asarray(detections.scores, dtype=np.float32))
        if progress is not None:
            progress(stop, len(frames))
    return np.concatenate(keypoints), np.concatenate(scores)


def model_boxes(
    model: Any, frames: np.ndarray, background: Background, config: LocalizeConfig | None = None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Crop boxes ``(M, 4)`` (``(M, 5)``, turned to the heading, for a model trained so) and found
    flags ``(M,)`` for a model trained on subject crops (``model.meta['localized']``), with its
    training box side; ``(None, None)`` for a whole-frame model. Each labelled image is localised on
    its own against ``background``."""
    from fomm_kp.localize.boxes import LocalizeConfig, boxes_for_frames

    if not model.meta.get("localized"):
        return None, None
    if config is None:
        config = LocalizeConfig(margin=model.config.data.box_margin)
    side = int(round(float(model.meta["box_side"])))
    located = boxes_for_frames(frames, background, config, side=side)
    return located.crop_boxes(bool(model.meta.get("aligned", False))).astype(np.float64), located.found


def untrained_like(model: Any, seed: int = 0) -> Any:
    """A network of the same config and metadata (so the same crops) with fresh random weights:
    the reference a trained detector must clearly beat."""
    import torch

    from fomm_kp.runtime.model import Model
    from fomm_kp.models.fomm import FOMM

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        network = FOMM(model.config.model)
    finally:
        torch.random.set_rng_state(generator_state)
    return Model(network, model.config, dict(model.meta), 0, model.device)


def evaluate_model_on_labels(
    labelled: LabelledFrames,
    models: Mapping[str, Any],
    frames: np.ndarray | None = None,
    background: Background | None = None,
    localize_config: LocalizeConfig | None = None,
    folds: int = 5,
    fold_mode: FoldMode = "shuffled",
    seed: int = 0,
    use_confidence: bool = False,
    extra_methods: Mapping[str, PoseFeatures] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> KeypointEvaluation:
    """Run each model (name → :class:`fomm_kp.inference.Model`) and the baselines on labelled images
    and score them all with :func:`evaluate_keypoints`.

    A model trained on subject crops sees each image cropped around the subject (found against
    ``background``, with the model's training box side); where the subject is not found its
    keypoints are NaN (the regression then predicts the training mean there: misses cost).

    Args:
        labelled: the labels (images are read from ``labelled.image_paths`` unless ``frames``).
        frames: uint8 ``(M, H, W, 3)`` the labelled images, when already in memory.
        background: for blob moments and subject boxes; default: the median of the labelled
            images themselves (right when the subject moves between them; check otherwise).
        extra_methods: more feature sets to score beside them (e.g. keypoints from tracks).
    """
    from fomm_kp.localize.boxes import LocalizeConfig, background_from_frames, mask_not_found

    frames = labelled.load_images() if frames is None else np.asarray(frames)
    if len(frames) != len(labelled):
        raise FommError(f"{len(frames)} images for {len(labelled)} labelled frames")
    config = LocalizeConfig() if localize_config is None else localize_config
    notes: dict[str, Any] = {"labels": labelled.source}
    if background is None:
        background = background_from_frames(frames, config)
        notes["background"] = "median of the labelled images"
    methods: dict[str, PoseFeatures] = {}
    for name, model in models.items():
        boxes, found = model_boxes(model, frames, background)
        keypoints, scores = detect_keypoints(model, frames, boxes, progress=progress)
        if found is not None:
            keypoints, scores = mask_not_found(keypoints, scores, found)
            notes[f"{name}: subject boxes"] = {"side": int(round(float(boxes[0, 2] - boxes[0, 0]))), "found": int(found.sum())}
        else:
            notes[f"{name}: subject boxes"] = "none (whole frames)"
        methods[name] = PoseFeatures(points=keypoints, confidence=scores)
    methods.update(extra_methods or {})
    baselines = baseline_features(frames, background)
    found = int(np.all(np.isfinite(baselines["blob centroid"].points), axis=(1, 2)).sum())
    notes["blob found"] = f"{found} of {len(frames)} images"
    if found < 0.9 * len(frames):
        log.warning("the subject stands out from the background in only %d of %d labelled images: "
                    "give a background video of the empty scene", found, len(frames))
    methods.update(baselines)
    return evaluate_keypoints(
        labelled.points, methods, labelled.part_names, folds, fold_mode, seed, use_confidence, notes=notes
    )


def labelled_images(labelled: LabelledFrames, video: str | os.PathLike | None = None) -> np.ndarray:
    """The images of labelled frames, uint8 ``(M, H, W, 3)``: the label file's image files when they
    exist, else frames ``labelled.frame_indices`` of ``video``."""
    from pathlib import Path

    from fomm_kp.video import iter_frames

    if all(p and Path(p).is_file() for p in labelled.image_paths) and video is None:
        return labelled.load_images()
    if video is None:
        raise FommError(f"the labelled images of {labelled.source} are not on disk: give the video they come from")
    indices = labelled.frame_indices
    if (indices < 0).any():
        raise FommError(f"{labelled.source}: frame indices unknown for some labelled images; cannot take them from {video}")
    wanted = {int(i) for i in indices}
    found: dict[int, np.ndarray] = {}
    for index, frame in iter_frames(video, stop=int(indices.max()) + 1):
        if index in wanted:
            found[index] = frame
    missing = sorted(wanted - set(found))
    if missing:
        raise FommError(f"{video} has no frame {missing[0]} (labelled in {labelled.source})")
    return np.stack([found[int(i)] for i in indices])


def track_features(tracks: Tracks, labelled: LabelledFrames, subject: int = 0) -> PoseFeatures:
    """Keypoints and scores of one subject of ``tracks`` at the labelled frames (by frame index)."""
    row_of = {int(f): i for i, f in enumerate(tracks.frame_indices)}
    missing = [int(f) for f in labelled.frame_indices if int(f) not in row_of]
    if missing:
        raise FommError(f"{len(missing)} labelled frames are not in the tracks, e.g. frame {missing[0]}")
    if not 0 <= subject < tracks.keypoints.shape[1]:
        raise FommError(f"subject {subject} not in tracks with {tracks.keypoints.shape[1]} subjects")
    rows = [row_of[int(f)] for f in labelled.frame_indices]
    return PoseFeatures(points=tracks.keypoints[rows, subject], confidence=tracks.scores[rows, subject])


def evaluate_labels(
    labels: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    tracks: str | os.PathLike | None = None,
    video: str | os.PathLike | None = None,
    untrained: bool = True,
    folds: int = 5,
    fold_mode: FoldMode = "shuffled",
    use_confidence: bool = False,
    individual: str | None = None,
    seed: int = 0,
    background: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> KeypointEvaluation:
    """Keypoint accuracy against a label file (DeepLabCut ``.csv``/``.h5`` or SLEAP ``.slp``):
    a model (``checkpoint``, with an untrained network of the same shape beside it when
    ``untrained``) run on the labelled images, and/or ``tracks`` read at the labelled frame indices,
    next to the mean-pose, blob-moment and thumbnail baselines. With neither, baselines only.

    ``video``: where to take the labelled frames from when the label file's images are not on
    disk (SLEAP), or the tracks' video. ``background``: a video or image folder of the same
    camera whose median is the empty scene (default: the median of the labelled images, which
    contains the subject where it sits in most of them).
    """
    from fomm_kp.evaluation.labels import load_labels
    from fomm_kp.tracks import load_tracks

    labelled = load_labels(labels, individual)
    extra: dict[str, PoseFeatures] = {}
    if tracks is not None:
        loaded = load_tracks(tracks)
        extra["tracks"] = track_features(loaded, labelled)
        if video is None and loaded.video and not all(labelled.image_paths):
            video = loaded.video
    frames = labelled_images(labelled, video)
    models: dict[str, Any] = {}
    if checkpoint is not None:
        from fomm_kp.api import load_model

        model = load_model(checkpoint)
        models["fomm_kp"] = model
        if untrained:
            models["untrained (same config)"] = untrained_like(model, seed)
    scene = None
    if background is not None:
        from fomm_kp.localize.boxes import LocalizeConfig, estimate_background

        scene = estimate_background(background, LocalizeConfig())
    evaluation = evaluate_model_on_labels(
        labelled, models, frames, background=scene, folds=folds, fold_mode=fold_mode, seed=seed,
        use_confidence=use_confidence, extra_methods=extra, progress=progress,
    )
    if background is not None:
        evaluation.notes["background"] = f"median of {background}"
    return evaluation
