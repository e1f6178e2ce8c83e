"""The keypoint protocol: every method scored on the same folds, the table and its JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fomm_kp.errors import FommError
from fomm_kp.evaluation.keypoints import CrossValidation, PoseFeatures, evaluate_keypoints, save_evaluation

from conftest import affine_labels


def test_missing_keypoints_cost_and_missing_labels_are_skipped(rng):
    m = 300
    keypoints = rng.uniform(0, 300, (m, 2, 2))
    labels = affine_labels(rng, keypoints, [0, 1], sigma=1.0)
    labels[:20, 1] = np.nan  # part 1 not labelled in 20 frames
    holes = keypoints.copy()
    holes[::10, 0] = np.nan  # keypoint 0 lost in every 10th frame
    evaluation = evaluate_keypoints(
        labels, {"clean": PoseFeatures(points=keypoints), "holes": PoseFeatures(points=holes)}, ["a", "b"]
    )
    clean, holey = evaluation.results["clean"], evaluation.results["holes"]
    assert np.all(np.isfinite(clean.regression)) and np.all(np.isfinite(holey.single))
    assert clean.regression[0] < 2.0
    assert holey.single[0] > 3 * clean.single[0]  # a miss is predicted by the mean: it costs
    assert holey.missing_frames == 30 and clean.missing_frames == 0


def test_table_json_and_save(tmp_path, rng):
    m = 60
    keypoints = rng.uniform(0, 100, (m, 3, 2))
    labels = affine_labels(rng, keypoints, [1], sigma=0.5)
    evaluation = evaluate_keypoints(
        labels,
        {"kp": PoseFeatures(points=keypoints, confidence=rng.uniform(0, 1, (m, 3))), "thumb": PoseFeatures(extra=rng.normal(size=(m, 4)))},
        ["nose"], CrossValidation(folds=3, fold_mode="blocks", use_confidence=True), notes={"why": "test"},
    )
    text = evaluation.table()
    assert "mean pose" in text and "kp" in text and "thumb" in text and "nose" in text
    data = evaluation.to_dict()
    assert data["protocol"]["folds"] == 3 and data["protocol"]["fold_mode"] == "blocks"
    assert data["protocol"]["ridge_penalty_by"] == "loo"
    assert data["methods"]["kp"]["best_single_index"] == {"nose": 1}
    assert data["methods"]["thumb"]["best_single"] is None
    assert data["methods"]["kp"]["regression"]["mean"] == pytest.approx(data["methods"]["kp"]["regression"]["nose"])
    path = tmp_path / "out" / "eval.json"
    path.parent.mkdir()
    save_evaluation(evaluation, path)
    assert json.loads(path.read_text()) == json.loads(json.dumps(data))


def test_the_penalty_is_named_in_the_protocol(rng):
    keypoints = rng.uniform(0, 100, (40, 3, 2))
    labels = affine_labels(rng, keypoints, [0], sigma=0.5)
    protocol = CrossValidation(folds=4, fold_mode="blocks", penalty="blocks")
    evaluation = evaluate_keypoints(labels, {"kp": PoseFeatures(points=keypoints)}, ["nose"], protocol)
    assert evaluation.to_dict()["protocol"]["ridge_penalty_by"] == "blocks"
    assert evaluation.results["kp"].regression[0] < 2.0  # an exact affine map plus noise is still found
    with pytest.raises(FommError, match="penalty"):
        CrossValidation(penalty="gcv")


def test_bad_shapes():
    with pytest.raises(FommError):
        evaluate_keypoints(np.zeros((10, 2)), {})
    with pytest.raises(FommError):
        evaluate_keypoints(np.zeros((10, 1, 2)), {"x": PoseFeatures(points=np.zeros((9, 2, 2)))})
    with pytest.raises(FommError):
        evaluate_keypoints(np.zeros((10, 1, 2)), {}, part_names=["a", "b"])


# ----------------------------------------------------------------------------------------------
# With images and a model


# ----------------------------------------------------------------------------------------------
# Command line
