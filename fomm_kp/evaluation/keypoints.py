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
  (centroid and principal-axis ends of the foreground, :func:`fomm_kp.localize.blobs.blob_moments`),
  **blob centroid** alone, and an **8×8 grey thumbnail** of the whole frame.

Folds are shuffled (seeded) or contiguous blocks (for consecutive frames, where neighbours leak).
:func:`fomm_kp.evaluation.harness.evaluate_model_on_labels` runs a model and the baselines on
labelled images; the fits themselves are :mod:`fomm_kp.evaluation.regression`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.evaluation.regression import (
    Penalty,
    check_labels,
    kfold_indices,
    mean_pose_errors,
    regression_errors,
    single_keypoint_errors,
)
from fomm_kp.files import atomic_write
from fomm_kp.settings import SEED, check, flag, integer, one_of

__all__ = ["CrossValidation", "PoseFeatures", "MethodResult", "KeypointEvaluation", "evaluate_keypoints", "save_evaluation"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrossValidation:
    """The protocol: ``folds``-fold cross-validation over labelled frames, ``shuffled`` (seeded) or in
    contiguous ``blocks``; ``use_confidence`` adds keypoint confidences to the regression features;
    ``penalty``: how each training fold chooses its ridge penalty (``loo``: leave-one-out;
    ``blocks``: contiguous blocks of its rows, for features that neighbouring frames share)."""

    folds: int = 5
    fold_mode: Literal["shuffled", "blocks"] = "shuffled"
    seed: int = 0
    use_confidence: bool = False
    penalty: Penalty = "loo"

    def __post_init__(self) -> None:
        check(self, folds=integer(2), fold_mode=one_of("shuffled", "blocks"), seed=SEED, use_confidence=flag(),
              penalty=one_of("loo", "blocks"))


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
    protocol: CrossValidation
    results: dict[str, MethodResult]
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def folds(self) -> int:
        return self.protocol.folds

    @property
    def fold_mode(self) -> str:
        return self.protocol.fold_mode

    @property
    def use_confidence(self) -> bool:
        return self.protocol.use_confidence

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
                "ridge_penalty_by": self.protocol.penalty,
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
    protocol: CrossValidation = CrossValidation(),
    include_mean_pose: bool = True,
    notes: Mapping[str, Any] | None = None,
) -> KeypointEvaluation:
    """Score every method against ``labels`` ``(M, P, 2)`` with the same folds (``protocol``).

    Each method gets the full ridge regression from all its features, and (when it has points) the
    best-single-point affine error per part. ``mean pose`` is added first when
    ``include_mean_pose``. Pure numpy: no model or image needed.
    """
    labels = check_labels(labels)
    m, p = labels.shape[:2]
    names = tuple(part_names) if part_names is not None else tuple(f"part{i}" for i in range(p))
    if len(names) != p:
        raise FommError(f"{p} labelled parts but {len(names)} part names")
    fold_list = kfold_indices(m, protocol.folds, protocol.fold_mode, protocol.seed)
    results: dict[str, MethodResult] = {}
    if include_mean_pose:
        results["mean pose"] = MethodResult(regression=mean_pose_errors(labels, fold_list))
    for name, method in methods.items():
        if len(method) != m:
            raise FommError(f"method '{name}' has features for {len(method)} frames, labels for {m}")
        regression = regression_errors(method.regression_features(protocol.use_confidence), labels, fold_list,
                                       protocol.penalty)
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
    return KeypointEvaluation(names, m, protocol, results, dict(notes or {}))


def save_evaluation(evaluation: KeypointEvaluation, path: str | os.PathLike) -> None:
    """Write :meth:`KeypointEvaluation.to_dict` as JSON (atomically)."""
    text = json.dumps(evaluation.to_dict(), indent=2)

    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            handle.write(text + "\n")

    atomic_write(path, write)
