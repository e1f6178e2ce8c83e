"""The harness: baselines, the model wrapper and untrained references on labelled images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fomm_kp.evaluation.harness import (
    baseline_features,
    detect_keypoints,
    evaluate_labels,
    evaluate_model_on_labels,
    model_boxes,
    thumbnails,
    untrained_like,
)
from fomm_kp.evaluation.keypoints import CrossValidation, evaluate_keypoints
from fomm_kp.localize.background import background_from_frames

from conftest import labelled_frames, synthetic_labelled, untrained_model


def test_thumbnails():
    frames = np.zeros((2, 80, 64, 3), dtype=np.uint8)
    frames[1, :40] = 255  # top half white
    thumbs = thumbnails(frames)
    assert thumbs.shape == (2, 64) and thumbs.dtype == np.float32
    assert thumbs[0].max() == 0.0
    grid = thumbs[1].reshape(8, 8)
    np.testing.assert_allclose(grid[:4], 1.0)
    np.testing.assert_allclose(grid[4:], 0.0)


def test_baselines_on_synthetic_images():
    frames, labels = synthetic_labelled(30)
    methods = baseline_features(frames, background_from_frames(frames))
    assert set(methods) == {"blob moments", "blob centroid", "thumbnail 8x8"}
    centroid = methods["blob centroid"].points[:, 0]
    body = (labels[:, 0] + labels[:, 1]) / 2  # head marker and tail are 9 and 12 px from the centre
    assert np.all(np.linalg.norm(centroid - body, axis=1) < 3.0)
    evaluation = evaluate_keypoints(labels, methods, ["head", "tail"], CrossValidation(folds=5))
    mean_pose = evaluation.results["mean pose"].regression
    assert np.all(evaluation.results["blob centroid"].single < 0.3 * mean_pose)


def test_untrained_like_keeps_config_and_meta_but_not_weights():
    model = untrained_model({"localized": True, "box_side": 60.0})
    fresh = untrained_like(model, seed=0)
    again = untrained_like(model, seed=0)
    assert fresh.config == model.config and fresh.meta == model.meta
    a = next(fresh.network.parameters())
    assert torch.equal(a, next(again.network.parameters()))
    differs = [not torch.equal(p, q) for p, q in zip(fresh.network.parameters(), model.network.parameters())]
    assert any(differs)


@pytest.mark.parametrize("localized", [True, False])
def test_evaluate_model_on_labels_runs_models_and_baselines(localized):
    frames, labels = synthetic_labelled(25)
    model = untrained_model({"localized": localized, "box_side": 60.0})
    evaluation = evaluate_model_on_labels(labelled_frames(labels), {"tiny": model}, frames=frames, protocol=CrossValidation(folds=5))
    assert list(evaluation.results) == ["mean pose", "tiny", "blob moments", "blob centroid", "thumbnail 8x8"]
    tiny = evaluation.results["tiny"]
    assert tiny.regression.shape == (2,) and np.all(np.isfinite(tiny.regression))
    assert tiny.single_index.shape == (2,) and np.all(tiny.single_index < model.num_keypoints)
    boxes = evaluation.notes["tiny: subject boxes"]
    if localized:
        assert boxes == {"side": 60, "found": 25}
    else:
        assert boxes == "none (whole frames)"


def test_keypoints_from_the_model_land_in_their_boxes():

    frames, _ = synthetic_labelled(8)
    model = untrained_model({"localized": True, "box_side": 60.0})
    boxes, found = model_boxes(model, frames, background_from_frames(frames))
    keypoints, scores = detect_keypoints(model, frames, boxes, batch_size=3)
    assert keypoints.shape == (8, 4, 2) and scores.shape == (8, 4) and found.all()
    inside = (keypoints[..., 0] >= boxes[:, None, 0] - 0.5) & (keypoints[..., 0] <= boxes[:, None, 2] - 0.5)
    inside &= (keypoints[..., 1] >= boxes[:, None, 1] - 0.5) & (keypoints[..., 1] <= boxes[:, None, 3] - 0.5)
    assert inside.all()


@pytest.mark.slow
def test_openfield_baselines(shared_data):
    """Real data, baselines only: blob moments beat the thumbnail, which beats the mean pose."""

    evaluation = evaluate_labels(shared_data / "dlc-openfield/labeled-data/m4s1/CollectedData_Pranav.csv")
    mean = {name: float(np.mean(r.regression)) for name, r in evaluation.results.items()}
    assert mean["blob moments"] < mean["thumbnail 8x8"] < mean["mean pose"]
    assert 5.0 < mean["blob moments"] < 20.0 and mean["mean pose"] > 100.0
