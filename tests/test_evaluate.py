"""The keypoint evaluation harness: folds, regressions with known errors, best single keypoint,
baselines, the model wrapper and ``fomm-kp evaluate keypoints``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fomm_kp.errors import FommError
from fomm_kp.evaluation.keypoints import (
    PoseFeatures,
    affine_cv_predict,
    baseline_features,
    evaluate_keypoints,
    evaluate_model_on_labels,
    kfold_indices,
    mean_pose_errors,
    regression_errors,
    ridge_cv_predict,
    save_evaluation,
    single_keypoint_errors,
    thumbnails,
    untrained_like,
)

RAYLEIGH = np.sqrt(np.pi / 2)  # mean Euclidean length of a 2-D isotropic gaussian of unit sigma


def _affine_labels(rng, keypoints: np.ndarray, sources: list[int], sigma: float) -> np.ndarray:
    """Part p = A_p · keypoint[sources[p]] + b_p + N(0, sigma²) per coordinate."""
    parts = []
    for j in sources:
        a = rng.normal(0, 1, (2, 2)) + np.eye(2)
        b = rng.uniform(-50, 50, 2)
        parts.append(keypoints[:, j] @ a.T + b + rng.normal(0, sigma, (len(keypoints), 2)))
    return np.stack(parts, axis=1)


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
    labels = _affine_labels(rng, keypoints, [0, 3, 5], sigma)
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
    labels = _affine_labels(rng, keypoints, [2, 6], sigma=1.0)
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


def test_missing_keypoints_cost_and_missing_labels_are_skipped(rng):
    m = 300
    keypoints = rng.uniform(0, 300, (m, 2, 2))
    labels = _affine_labels(rng, keypoints, [0, 1], sigma=1.0)
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


def test_table_json_and_save(tmp_path, rng):
    m = 60
    keypoints = rng.uniform(0, 100, (m, 3, 2))
    labels = _affine_labels(rng, keypoints, [1], sigma=0.5)
    evaluation = evaluate_keypoints(
        labels,
        {"kp": PoseFeatures(points=keypoints, confidence=rng.uniform(0, 1, (m, 3))), "thumb": PoseFeatures(extra=rng.normal(size=(m, 4)))},
        ["nose"], folds=3, fold_mode="blocks", use_confidence=True, notes={"why": "test"},
    )
    text = evaluation.table()
    assert "mean pose" in text and "kp" in text and "thumb" in text and "nose" in text
    data = evaluation.to_dict()
    assert data["protocol"]["folds"] == 3 and data["protocol"]["fold_mode"] == "blocks"
    assert data["methods"]["kp"]["best_single_index"] == {"nose": 1}
    assert data["methods"]["thumb"]["best_single"] is None
    assert data["methods"]["kp"]["regression"]["mean"] == pytest.approx(data["methods"]["kp"]["regression"]["nose"])
    path = tmp_path / "out" / "eval.json"
    path.parent.mkdir()
    save_evaluation(evaluation, path)
    assert json.loads(path.read_text()) == json.loads(json.dumps(data))


def test_bad_shapes():
    with pytest.raises(FommError):
        evaluate_keypoints(np.zeros((10, 2)), {})
    with pytest.raises(FommError):
        evaluate_keypoints(np.zeros((10, 1, 2)), {"x": PoseFeatures(points=np.zeros((9, 2, 2)))})
    with pytest.raises(FommError):
        evaluate_keypoints(np.zeros((10, 1, 2)), {}, part_names=["a", "b"])


def test_thumbnails():
    frames = np.zeros((2, 80, 64, 3), dtype=np.uint8)
    frames[1, :40] = 255  # top half white
    thumbs = thumbnails(frames)
    assert thumbs.shape == (2, 64) and thumbs.dtype == np.float32
    assert thumbs[0].max() == 0.0
    grid = thumbs[1].reshape(8, 8)
    np.testing.assert_allclose(grid[:4], 1.0)
    np.testing.assert_allclose(grid[4:], 0.0)


# ----------------------------------------------------------------------------------------------
# With images and a model


def _synthetic_labelled(num: int = 30):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_localize import synthetic_frames

    frames, centres, markers, angles = synthetic_frames(num * 5)
    frames, centres, markers = frames[::5], centres[::5], markers[::5]
    tail = centres - 12.0 * np.stack([np.cos(angles[::5]), np.sin(angles[::5])], axis=1)
    labels = np.stack([markers, tail], axis=1)  # (M, 2 parts, 2)
    return frames, labels


def _labelled(labels: np.ndarray):
    from fomm_kp.evaluation.labels import LabelledFrames

    m = len(labels)
    return LabelledFrames(labels, ("head", "tail"), ("",) * m, np.arange(m), "", "synthetic")


def test_baselines_on_synthetic_images():
    from fomm_kp.localize.boxes import background_from_frames

    frames, labels = _synthetic_labelled(30)
    methods = baseline_features(frames, background_from_frames(frames))
    assert set(methods) == {"blob moments", "blob centroid", "thumbnail 8x8"}
    centroid = methods["blob centroid"].points[:, 0]
    body = (labels[:, 0] + labels[:, 1]) / 2  # head marker and tail are 9 and 12 px from the centre
    assert np.all(np.linalg.norm(centroid - body, axis=1) < 3.0)
    evaluation = evaluate_keypoints(labels, methods, ["head", "tail"], folds=5)
    mean_pose = evaluation.results["mean pose"].regression
    assert np.all(evaluation.results["blob centroid"].single < 0.3 * mean_pose)


def _tiny_model(meta: dict):
    import torch

    from fomm_kp.config import builtin_config
    from fomm_kp.runtime.model import Model
    from fomm_kp.models.fomm import FOMM

    torch.manual_seed(1)
    config = builtin_config("tiny")
    return Model(FOMM(config.model), config, meta, 0)


def test_untrained_like_keeps_config_and_meta_but_not_weights():
    import torch

    model = _tiny_model({"localized": True, "box_side": 60.0})
    fresh = untrained_like(model, seed=0)
    again = untrained_like(model, seed=0)
    assert fresh.config == model.config and fresh.meta == model.meta
    a = next(fresh.network.parameters())
    assert torch.equal(a, next(again.network.parameters()))
    differs = [not torch.equal(p, q) for p, q in zip(fresh.network.parameters(), model.network.parameters())]
    assert any(differs)


@pytest.mark.parametrize("localized", [True, False])
def test_evaluate_model_on_labels_runs_models_and_baselines(localized):
    frames, labels = _synthetic_labelled(25)
    model = _tiny_model({"localized": localized, "box_side": 60.0})
    evaluation = evaluate_model_on_labels(_labelled(labels), {"tiny": model}, frames=frames, folds=5)
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
    from fomm_kp.evaluation.keypoints import detect_keypoints, model_boxes
    from fomm_kp.localize.boxes import background_from_frames

    frames, _ = _synthetic_labelled(8)
    model = _tiny_model({"localized": True, "box_side": 60.0})
    boxes, found = model_boxes(model, frames, background_from_frames(frames))
    keypoints, scores = detect_keypoints(model, frames, boxes, batch_size=3)
    assert keypoints.shape == (8, 4, 2) and scores.shape == (8, 4) and found.all()
    inside = (keypoints[..., 0] >= boxes[:, None, 0] - 0.5) & (keypoints[..., 0] <= boxes[:, None, 2] - 0.5)
    inside &= (keypoints[..., 1] >= boxes[:, None, 1] - 0.5) & (keypoints[..., 1] <= boxes[:, None, 3] - 0.5)
    assert inside.all()


# ----------------------------------------------------------------------------------------------
# Command line


def _write_dlc_project(root: Path, frames: np.ndarray, labels: np.ndarray) -> Path:
    import imageio.v3 as iio

    folder = root / "labeled-data" / "clip"
    folder.mkdir(parents=True)
    lines = ["scorer,me,me,me,me", "bodyparts,head,head,tail,tail", "coords,x,y,x,y"]
    for i, (frame, row) in enumerate(zip(frames, labels)):
        iio.imwrite(folder / f"img{i:04d}.png", frame)
        lines.append(f"labeled-data/clip/img{i:04d}.png," + ",".join(repr(float(v)) for v in row.ravel()))
    path = folder / "CollectedData_me.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run_cli(args: list[str]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from fomm_kp.cli import app

    result = CliRunner().invoke(app, args)
    code = result.exit_code
    if isinstance(result.exception, FommError):
        code = 2
    return code, result.output


def test_cli_evaluate_keypoints_with_a_checkpoint(tmp_path):
    from fomm_kp.checkpoint import save_checkpoint

    frames, labels = _synthetic_labelled(20)
    csv_path = _write_dlc_project(tmp_path / "project", frames, labels)
    model = _tiny_model({"localized": True, "box_side": 60.0})
    net = model.network
    states = {"detector": net.detector.state_dict(), "dense_motion": net.dense_motion.state_dict(),
              "generator": net.generator.state_dict()}
    if net.background is not None:
        states["background"] = net.background.state_dict()
    checkpoint = save_checkpoint(tmp_path / "model.pt", model.config, states, 0, model.meta)
    out = tmp_path / "eval.json"
    code, output = _run_cli(["evaluate", "keypoints", str(csv_path), "--checkpoint", str(checkpoint),
                             "--folds", "4", "--json", str(out)])
    assert code == 0, output
    data = json.loads(out.read_text())
    assert data["parts"] == ["head", "tail"]
    assert set(data["methods"]) == {"mean pose", "fomm_kp", "untrained (same config)", "blob moments",
                                    "blob centroid", "thumbnail 8x8"}
    assert "best single point" in output


def test_cli_bad_fold_mode(tmp_path):
    frames, labels = _synthetic_labelled(6)
    csv_path = _write_dlc_project(tmp_path / "project", frames, labels)
    code, _ = _run_cli(["evaluate", "keypoints", str(csv_path), "--fold-mode", "sideways"])
    assert code == 2


@pytest.mark.slow
def test_openfield_baselines(shared_data):
    """Real data, baselines only: blob moments beat the thumbnail, which beats the mean pose."""
    from fomm_kp.evaluation.keypoints import evaluate_labels

    evaluation = evaluate_labels(shared_data / "dlc-openfield/labeled-data/m4s1/CollectedData_Pranav.csv")
    mean = {name: float(np.mean(r.regression)) for name, r in evaluation.results.items()}
    assert mean["blob moments"] < mean["thumbnail 8x8"] < mean["mean pose"]
    assert 5.0 < mean["blob moments"] < 20.0 and mean["mean pose"] > 100.0


def test_cli_with_a_background_folder(tmp_path):
    import imageio.v3 as iio

    sys.path.insert(0, str(Path(__file__).parent))
    from test_localize import synthetic_frames

    frames, labels = _synthetic_labelled(12)
    csv_path = _write_dlc_project(tmp_path / "project", frames, labels)
    scene = tmp_path / "scene"
    scene.mkdir()
    empty = synthetic_frames(3, missing=(0, 1, 2))[0]
    for i, frame in enumerate(empty):
        iio.imwrite(scene / f"{i}.png", frame)
    out = tmp_path / "eval.json"
    code, output = _run_cli(["evaluate", "keypoints", str(csv_path), "--folds", "3", "--background", str(scene),
                             "--json", str(out)])
    assert code == 0, output
    data = json.loads(out.read_text())
    assert data["notes"]["background"].startswith("median of") and data["notes"]["blob found"] == "12 of 12 images"
    assert set(data["methods"]) == {"mean pose", "blob moments", "blob centroid", "thumbnail 8x8"}
