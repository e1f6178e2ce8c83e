"""The fits of keypoint evaluation: k-fold splits, cross-validated ridge regression and affine maps,
and errors per labelled part (pure numpy)."""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from fomm_kp.errors import FommError

__all__ = [
    "FoldMode", "Penalty", "RIDGE_ALPHAS", "kfold_indices", "ridge_cv_predict", "affine_cv_predict", "part_errors", "check_labels",
    "regression_errors", "mean_pose_errors", "single_keypoint_errors",
]

FoldMode = Literal["shuffled", "blocks"]
# How the ridge penalty is chosen on a training fold: closed-form leave-one-out, or held-out
# contiguous blocks of the training rows (in their order), which neighbouring video frames whose
# features move together (smoothed tracks) cannot flatter.
Penalty = Literal["loo", "blocks"]
INNER_BLOCKS = 5
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-4, 4, 17))



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


def _ridge_fit(x: np.ndarray, y: np.ndarray, alphas: Sequence[float],
               penalty: Penalty = "loo") -> tuple[np.ndarray, np.ndarray, float]:
    """Ridge with intercept on standardised ``x`` (n, F) → ``y`` (n, D); the penalty minimises the
    held-out squared error of ``penalty`` (see :data:`Penalty`). Returns (coefficients (F, D),
    intercept (D,), alpha)."""
    y_mean = y.mean(axis=0)
    x_mean = x.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    scores = _loo_scores(u, s, uty, yc, alphas) if penalty == "loo" else _block_scores(x, y, alphas)
    alpha = alphas[_first_minimum(scores)]
    coef = vt.T @ ((s / (s**2 + alpha))[:, None] * uty)
    return coef, y_mean - x_mean @ coef, alpha


def _first_minimum(scores: Sequence[float]) -> int:
    """Index of the smallest score, the first of near-ties (within 1e-12)."""
    best = 0
    for i, score in enumerate(scores):
        if score < scores[best] - 1e-12:
            best = i
    return best


def _loo_scores(u: np.ndarray, s: np.ndarray, uty: np.ndarray, yc: np.ndarray, alphas: Sequence[float]) -> list[float]:
    """Closed-form leave-one-out squared error per penalty, from the SVD of the centred features."""
    n = len(yc)
    scores = []
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink[:, None] * uty)
        hat = (u**2) @ shrink + 1.0 / n
        loo = (yc - fitted) / np.maximum(1.0 - hat, 1e-6)[:, None]
        scores.append(float(np.mean(loo**2)))
    return scores


def _block_scores(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> list[float]:
    """Squared error per penalty over :data:`INNER_BLOCKS` contiguous blocks of the rows, each
    predicted by a ridge fitted on the other rows."""
    n = len(x)
    if n < 2 * INNER_BLOCKS:
        raise FommError(f"choosing the ridge penalty by blocks needs at least {2 * INNER_BLOCKS} training rows, got {n}")
    errors = np.zeros(len(alphas))
    for block in np.array_split(np.arange(n), INNER_BLOCKS):
        rest = np.ones(n, dtype=bool)
        rest[block] = False
        x_mean, y_mean = x[rest].mean(axis=0), y[rest].mean(axis=0)
        u, s, vt = np.linalg.svd(x[rest] - x_mean, full_matrices=False)
        uty = u.T @ (y[rest] - y_mean)
        centred = x[block] - x_mean
        for i, alpha in enumerate(alphas):
            coef = vt.T @ ((s / (s**2 + alpha))[:, None] * uty)
            errors[i] += float(np.sum((centred @ coef + y_mean - y[block]) ** 2))
    return list(errors / n)


def ridge_cv_predict(
    features: np.ndarray, targets: np.ndarray, folds: Sequence[np.ndarray], alphas: Sequence[float] = RIDGE_ALPHAS,
    penalty: Penalty = "loo",
) -> np.ndarray:
    """Cross-validated ridge predictions: float64 ``(M, D)`` from ``features`` ``(M, F)`` (NaN
    allowed: filled with the training mean) and ``targets`` ``(M, D)`` (rows with any NaN target
    are left out of training). Each fold's rows are predicted by a model fitted on the others,
    whose penalty is chosen on those others alone (``penalty``)."""
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
        coef, intercept, _ = _ridge_fit(x_train, targets[train], alphas, penalty)
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


def check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 3 or labels.shape[2] != 2:
        raise FommError(f"labels must have shape (M, P, 2), got {labels.shape}")
    return labels


def regression_errors(features: np.ndarray, labels: np.ndarray, folds: Sequence[np.ndarray],
                      penalty: Penalty = "loo") -> np.ndarray:
    """k-fold ridge regression from ``features`` ``(M, F)`` to each part of ``labels`` ``(M, P, 2)``
    separately; returns the held-out error per part ``(P,)`` in pixels."""
    labels = check_labels(labels)
    predictions = np.full(labels.shape, np.nan)
    for p in range(labels.shape[1]):
        predictions[:, p] = ridge_cv_predict(features, labels[:, p], folds, penalty=penalty)
    return part_errors(predictions, labels)


def mean_pose_errors(labels: np.ndarray, folds: Sequence[np.ndarray]) -> np.ndarray:
    """Error per part ``(P,)`` of predicting each held-out part by its training-fold mean."""
    labels = check_labels(labels)
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
    labels = check_labels(labels)
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
