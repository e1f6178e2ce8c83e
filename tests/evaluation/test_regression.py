"""k-fold splits and cross-validated fits with known errors (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from fomm_kp.errors import FommError
from fomm_kp.evaluation.regression import (
    affine_cv_predict,
    kfold_indices,
    mean_pose_errors,
    regression_errors,
    ridge_cv_predict,
    single_keypoint_errors,
)

from conftest import affine_labels

RAYLEIGH = np.sqrt(np.pi / 2)  # mean Euclidean length of a 2-D isotropic gaussian of unit sigma


def test_kfold_indices_partition():
    for mode in ("shuffled", "blocks"):
        folds = kfold_indices(23, 5, mode, seed=3)
        assert len(folds) == 5
        joined = np.sort(np.concatenate(folds))
        np.testing.assert_array_equal(joined, np.arange(23))
        assert {len(f) for f in folds} <= {4, 5}
    blocks = kfold_indices(23, 5, "blocks")
    assert all(np.all(np.diff(f) == 1) for f in blocks)  # contiguous runs
    shuffled = kfold_indices(23, 5, "shuffled", seed=3)
    assert not all(np.all(np.diff(f) == 1) for f in shuffled)
    np.testing.assert_array_equal(kfold_indices(23, 5, "shuffled", seed=3)[0], shuffled[0])
    with pytest.raises(FommError):
        kfold_indices(3, 5)
    with pytest.raises(FommError):
        kfold_indices(10, 1)
    with pytest.raises(FommError):
        kfold_indices(10, 2, "random")


def test_regression_error_matches_the_noise(rng):
    """Labels are an affine map of the keypoints plus noise: the held-out error is the noise's."""
    m, k, sigma = 1500, 6, 3.0
    keypoints = rng.uniform(0, 300, (m, k, 2))
    labels = affine_labels(rng, keypoints, [0, 3, 5], sigma)
    folds = kfold_indices(m, 5)
    errors = regression_errors(keypoints.reshape(m, -1), labels, folds)
    np.testing.assert_allclose(errors, sigma * RAYLEIGH, rtol=0.06)
    # the mean pose cannot explain the keypoint-driven variation
    assert np.all(mean_pose_errors(labels, folds) > 20 * sigma)


def test_mean_pose_error_of_pure_noise(rng):
    labels = np.array([100.0, 50.0]) + rng.normal(0, 4.0, (2000, 2, 2))
    errors = mean_pose_errors(labels, kfold_indices(2000, 5))
    np.testing.assert_allclose(errors, 4.0 * RAYLEIGH, rtol=0.05)


def test_useless_features_do_no_better_than_the_mean(rng):
    m = 300
    labels = np.array([10.0, 20.0]) + rng.normal(0, 5.0, (m, 1, 2))
    folds = kfold_indices(m, 5)
    noise = regression_errors(rng.normal(0, 1, (m, 20)), labels, folds)
    mean = mean_pose_errors(labels, folds)
    assert noise[0] == pytest.approx(mean[0], rel=0.05)  # ridge shrinks irrelevant features away


def test_best_single_keypoint_finds_the_one_that_follows_the_part(rng):
    m, k = 400, 8
    keypoints = rng.uniform(0, 300, (m, k, 2))
    labels = affine_labels(rng, keypoints, [2, 6], sigma=1.0)
    errors, best = single_keypoint_errors(keypoints, labels, kfold_indices(m, 5))
    np.testing.assert_array_equal(best, [2, 6])
    np.testing.assert_allclose(errors, RAYLEIGH, rtol=0.1)


def test_best_single_keypoint_is_not_fooled_by_a_mixture(rng):
    """A part that is the average of two keypoints is captured by the full regression but by no
    single keypoint: the measure that asks a keypoint to follow the part."""
    m, k = 400, 4
    keypoints = rng.uniform(0, 300, (m, k, 2))
    labels = ((keypoints[:, 0] + keypoints[:, 1]) / 2)[:, None] + rng.normal(0, 1.0, (m, 1, 2))
    folds = kfold_indices(m, 5)
    full = regression_errors(keypoints.reshape(m, -1), labels, folds)
    single, _ = single_keypoint_errors(keypoints, labels, folds)
    assert full[0] < 1.5
    assert single[0] > 20 * full[0]


def test_affine_cv_predict_recovers_an_exact_map(rng):
    points = rng.uniform(0, 100, (50, 2))
    targets = points @ np.array([[0.5, 0.2], [-0.1, 1.5]]).T + [3.0, -4.0]
    predictions = affine_cv_predict(points, targets, kfold_indices(50, 5))
    np.testing.assert_allclose(predictions, targets, atol=1e-8)


def test_ridge_with_confidence_and_nan_features(rng):
    m = 200
    x = rng.normal(0, 1, (m, 3))
    y = x @ np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]]) + 10.0
    x_holes = x.copy()
    x_holes[5, 1] = np.nan
    predictions = ridge_cv_predict(x_holes, y, kfold_indices(m, 4))
    assert np.all(np.isfinite(predictions))
    assert np.median(np.abs(predictions - y)) < 0.05


def test_penalty_by_blocks_is_not_flattered_by_repeated_rows():
    """Runs of identical rows (as smoothed tracks of neighbouring frames) with labels the features do
    not explain: leave-one-out sees each row's twins and picks the smallest penalty, which fails on
    held-out blocks; choosing it by contiguous blocks shrinks to the mean instead."""
    from fomm_kp.evaluation.regression import RIDGE_ALPHAS, _ridge_fit

    rng = np.random.default_rng(5)
    runs, repeats = 30, 8
    features = np.repeat(rng.normal(size=(runs, 40)), repeats, axis=0)
    labels = np.repeat(rng.normal(0, 10, (runs, 1, 2)), repeats, axis=0)
    standard = (features - features.mean(axis=0)) / features.std(axis=0)
    assert _ridge_fit(standard, labels[:, 0], RIDGE_ALPHAS, "loo")[2] == min(RIDGE_ALPHAS)
    assert _ridge_fit(standard, labels[:, 0], RIDGE_ALPHAS, "blocks")[2] >= 1e3
    folds = kfold_indices(len(labels), 5, "blocks")
    mean = mean_pose_errors(labels, folds)[0]
    by_blocks = regression_errors(features, labels, folds, "blocks")[0]
    by_loo = regression_errors(features, labels, folds, "loo")[0]
    assert by_blocks <= 1.1 * mean and by_loo >= 1.5 * mean


def test_penalty_by_blocks_needs_enough_rows(rng):
    with pytest.raises(FommError, match="at least 10 training rows"):
        ridge_cv_predict(rng.normal(size=(10, 3)), rng.normal(size=(10, 2)), kfold_indices(10, 2, "blocks"),
                         penalty="blocks")
