"""``fomm-kp evaluate keypoints``, ``reconstruction`` and ``behaviour``."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from fomm_kp.tracks import save_tracks

from conftest import (
    assert_one_error_line,
    behaviour_tracks,
    moving_square_video,
    run_cli,
    save_model,
    synthetic_frames,
    synthetic_labelled,
    untrained_model,
)


def _write_dlc_project(root: Path, frames: np.ndarray, labels: np.ndarray) -> Path:
    folder = root / "labeled-data" / "clip"
    folder.mkdir(parents=True)
    lines = ["scorer,me,me,me,me", "bodyparts,head,head,tail,tail", "coords,x,y,x,y"]
    for i, (frame, row) in enumerate(zip(frames, labels)):
        iio.imwrite(folder / f"img{i:04d}.png", frame)
        lines.append(f"labeled-data/clip/img{i:04d}.png," + ",".join(repr(float(v)) for v in row.ravel()))
    path = folder / "CollectedData_me.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_evaluate_keypoints_with_a_checkpoint(tmp_path, capsys, monkeypatch):
    frames, labels = synthetic_labelled(20)
    csv_path = _write_dlc_project(tmp_path / "project", frames, labels)
    checkpoint = save_model(untrained_model({"localized": True, "box_side": 60.0}), tmp_path / "model.pt")
    out = tmp_path / "eval.json"
    code, output, err = run_cli(["evaluate", "keypoints", str(csv_path), "--checkpoint", str(checkpoint),
                                 "--folds", "4", "--json", str(out)], capsys, monkeypatch)
    assert code == 0, err
    data = json.loads(out.read_text())
    assert data["parts"] == ["head", "tail"]
    assert set(data["methods"]) == {"mean pose", "fomm_kp", "untrained (same config)", "blob moments",
                                    "blob centroid", "thumbnail 8x8"}
    assert "best single point" in output


def test_cli_bad_fold_mode(tmp_path, capsys, monkeypatch):
    frames, labels = synthetic_labelled(6)
    csv_path = _write_dlc_project(tmp_path / "project", frames, labels)
    code, _, err = run_cli(["evaluate", "keypoints", str(csv_path), "--fold-mode", "sideways"], capsys, monkeypatch)
    assert_one_error_line(code, err, "--fold-mode")


def test_cli_with_a_background_folder(tmp_path, capsys, monkeypatch):
    frames, labels = synthetic_labelled(12)
    csv_path = _write_dlc_project(tmp_path / "project", frames, labels)
    scene = tmp_path / "scene"
    scene.mkdir()
    empty = synthetic_frames(3, missing=(0, 1, 2))[0]
    for i, frame in enumerate(empty):
        iio.imwrite(scene / f"{i}.png", frame)
    out = tmp_path / "eval.json"
    code, _, err = run_cli(["evaluate", "keypoints", str(csv_path), "--folds", "3", "--background", str(scene),
                            "--json", str(out)], capsys, monkeypatch)
    assert code == 0, err
    data = json.loads(out.read_text())
    assert data["notes"]["background"].startswith("median of") and data["notes"]["blob found"] == "12 of 12 images"
    assert set(data["methods"]) == {"mean pose", "blob moments", "blob centroid", "thumbnail 8x8"}


def test_cli_evaluate_reconstruction(tiny_model, tmp_path, capsys, monkeypatch):
    checkpoint = save_model(tiny_model, tmp_path / "checkpoint.pt")
    video = tmp_path / "square.mp4"
    moving_square_video(video, 48, 48, 3)
    out = tmp_path / "report.json"
    code, stdout, err = run_cli(["evaluate", "reconstruction", str(video), "-m", str(checkpoint), "-o", str(out)],
                                capsys, monkeypatch)
    assert code == 0, err
    assert "copy source" in stdout
    data = json.loads(out.read_text())
    assert data["frames"] == 3 and 0 <= data["l1"] <= 1 and data["akd"] is None and data["aed"] is None
    assert data["resolution"] == "model" and data["baseline_l1"] > 0
    full = tmp_path / "full.json"
    code, stdout, err = run_cli(["evaluate", "reconstruction", str(video), "-m", str(checkpoint), "-o", str(full),
                                 "--resolution", "full"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(full.read_text())["resolution"] == "full" and "own size" in stdout
    code, _, err = run_cli(["evaluate", "reconstruction", str(video), "-m", str(checkpoint), "--resolution", "huge"],
                           capsys, monkeypatch)
    assert_one_error_line(code, err, "--resolution")


def test_evaluate_behaviour_command(tmp_path: Path, capsys, monkeypatch) -> None:
    rows = ["video,start_frame,end_frame,label"]
    for i in range(3):
        save_tracks(behaviour_tracks(["circling", "oscillating"], seed=i, segment=60, name=f"v{i}.mp4"), tmp_path / "tracks" / f"v{i}.npz")
        rows += [f"v{i}.mp4,0,59,circling", f"v{i}.mp4,60,119,oscillating"]
    (tmp_path / "clips.csv").write_text("\n".join(rows) + "\n")
    code, stdout, err = run_cli(["evaluate", "behaviour", str(tmp_path / "clips.csv"), "--tracks-dir", str(tmp_path / "tracks"),
                                 "--no-pixel", "--shots", "1", "--episodes", "5", "--out", str(tmp_path / "eval")],
                                capsys, monkeypatch)
    assert code == 0, err
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["keypoints"]["prototype/1-shot"]["episodes"] == 5 and "pixel" not in results
    assert "1-shot" in stdout
