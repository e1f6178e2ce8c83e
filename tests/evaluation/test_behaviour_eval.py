"""Few-shot episodes, leave-one-group-out, the pixel motion-energy baseline, confusion plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fomm_kp.behaviour.features import Features
from fomm_kp.behaviour.plots import plot_confusion
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.errors import FommError
from fomm_kp.evaluation.behaviour import evaluate_behaviour, leave_one_group_out, run_episodes
from fomm_kp.evaluation.clips import Clip, motion_energy, motion_energy_features, pixel_features, read_clip_table
from fomm_kp.tracks import save_tracks
from fomm_kp.video import VideoWriter

from conftest import behaviour_tracks

CONFIG = FeatureConfig(window_seconds=(0.5, 1.0), stride_seconds=0.25)


def feature_clip(label: str, centre: np.ndarray, rng: np.random.Generator, group: str, windows: int = 6, noise: float = 1.0) -> Clip:
    values = centre[None] + rng.normal(0, noise, (windows, len(centre)))
    starts = np.arange(windows) * 5
    feats = Features(values, tuple(f"f{i}" for i in range(len(centre))), starts, starts + 10, 30.0)
    return Clip(label, feats, group)


def test_motion_energy_sees_where_things_move() -> None:
    frames = np.zeros((5, 40, 40, 3), np.uint8)
    for t in range(5):
        frames[t, 2:8, 2 + 2 * t : 8 + 2 * t] = 255  # a square moving right in the top-left cell
    energy = motion_energy(frames, (2, 2))
    assert energy.shape == (5, 4) and np.isnan(energy[0]).all()
    assert np.all(energy[1:, 0] > 0) and np.all(energy[1:, 1:] == 0)
    feats = motion_energy_features(energy, np.arange(5), 10.0, FeatureConfig(window_seconds=(0.3,), stride_seconds=0.1))
    mean0 = feats.values[:, feats.names.index("cell0.energy.mean@0.3s")]
    assert np.all(mean0 > 0) and np.all(feats.values[:, feats.names.index("cell3.energy.mean@0.3s")] == 0)
    ranked = motion_energy_features(energy, np.arange(5), 10.0, FeatureConfig(window_seconds=(0.3,)), sort_cells=True)
    assert "rank0.energy.mean@0.3s" in ranked.names
    # the same motion in another cell gives the same sorted features
    moved = energy[:, [3, 2, 1, 0]]
    again = motion_energy_features(moved, np.arange(5), 10.0, FeatureConfig(window_seconds=(0.3,)), sort_cells=True)
    assert np.allclose(ranked.values, again.values, equal_nan=True)
    with pytest.raises(FommError):
        motion_energy(frames, (50, 50))


def test_episodes_on_separable_and_on_random_clips(rng: np.random.Generator) -> None:
    centres = {c: rng.normal(0, 5, 8) for c in "abcde"}
    clips = [feature_clip(c, centres[c], rng, f"g{i}") for c in centres for i in range(4)]
    result = run_episodes(clips, k_shot=1, episodes=30, seed=1)
    assert result.n_way == 5 and result.accuracy_mean == 1.0 and result.macro_f1_mean == 1.0
    assert result.confusion.sum() == 30 * 5 * 3 and np.all(np.diag(result.confusion) == 30 * 3)
    again = run_episodes(clips, k_shot=1, episodes=30, seed=1)
    assert np.array_equal(again.confusion, result.confusion)  # same seed, same draws
    noise = [feature_clip(c, np.zeros(8), rng, f"g{i}") for c in "abcde" for i in range(4)]
    chance = run_episodes(noise, k_shot=2, n_way=5, episodes=60, seed=2, kind="knn")
    assert chance.accuracy_mean < 0.45
    assert 0 <= chance.window_accuracy_mean <= 1
    with pytest.raises(FommError, match="need"):
        run_episodes(clips, k_shot=4)  # 4 clips per class leave no query


def test_leave_one_group_out(rng: np.random.Generator) -> None:
    centres = {c: rng.normal(0, 5, 6) for c in "abc"}
    clips = [feature_clip(c, centres[c], rng, f"video{i}") for c in centres for i in range(3)]
    result = leave_one_group_out(clips, kind="logistic")
    assert result["accuracy"] == 1.0 and set(result["per_group"]) == {"video0", "video1", "video2"}
    with pytest.raises(FommError, match="at least 2 groups"):
        leave_one_group_out([Clip(c.label, c.features, "one") for c in clips])


def test_confusion_png(tmp_path: Path) -> None:
    path = plot_confusion(np.array([[3, 1], [0, 4]]), ["a", "b"], tmp_path / "c.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FommError):
        plot_confusion(np.zeros((2, 2)), ["a"], tmp_path / "d.png")


def _tiled_video(path: Path, frames: int = 60) -> Path:
    """Two tiles side by side: the left square jitters fast, the right one drifts slowly."""
    rng = np.random.default_rng(0)
    with VideoWriter(path, fps=30.0) as writer:
        for t in range(frames):
            frame = np.full((32, 64, 3), 30, np.uint8)
            x = 10 + int(rng.integers(-4, 5))
            frame[10:20, x : x + 8] = 230
            frame[10:20, 40 + t // 10 : 48 + t // 10] = 230
            writer.write(frame)
    return path


def test_pixel_features_of_a_crop(tmp_path: Path) -> None:
    video = _tiled_video(tmp_path / "v.mp4")
    left = pixel_features(video, (0, 0, 32, 32), CONFIG, grid=(2, 2), downscale=1)
    right = pixel_features(video, (32, 0, 64, 32), CONFIG, grid=(2, 2), downscale=1)
    name = "frame.energy.mean@0.5s"
    assert np.all(left.values[:, left.names.index(name)] > 3 * right.values[:, right.names.index(name)])
    part = pixel_features(video, None, CONFIG, start=10, stop=40)
    assert part.start_frames[0] == 10 and part.end_frames[-1] == 40


@pytest.mark.slow
def test_evaluate_behaviour_on_a_clip_table(tmp_path: Path) -> None:
    tracks_dir = tmp_path / "tracks"
    rows = ["video,start_frame,end_frame,label,x0,y0,x1,y1"]
    for i in range(3):
        kinds = ["circling", "oscillating"]
        save_tracks(behaviour_tracks(kinds, seed=i, segment=60, name=f"v{i}.mp4"), tracks_dir / f"v{i}.npz")
        _tiled_video(tmp_path / f"v{i}.mp4", frames=120)
        rows += [f"v{i}.mp4,0,59,circling,0,0,32,32", f"v{i}.mp4,60,119,oscillating,32,0,64,32"]
    table = tmp_path / "clips.csv"
    table.write_text("\n".join(rows) + "\n")
    assert len(read_clip_table(table)) == 6
    results = evaluate_behaviour(table, tmp_path / "out", tracks_dir=tracks_dir, shots=(1, 2, 4), episodes=10, config=CONFIG)
    kp = results["keypoints"]
    assert kp["prototype/1-shot"]["accuracy_mean"] == 1.0
    assert "skipped" in kp["prototype/4-shot"]
    assert kp["prototype/leave-one-group-out"]["accuracy"] == 1.0
    assert "prototype/1-shot" in results["pixel"]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["clips"] == 6
    assert (tmp_path / "out" / "confusion_keypoints_prototype_1shot.png").is_file()
    with pytest.raises(FommError, match="no tracks file"):
        evaluate_behaviour(table, tmp_path / "out2", tracks_dir=tmp_path, pixel=False)
