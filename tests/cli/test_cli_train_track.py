"""``fomm-kp train``, ``track`` and ``demo``; bad inputs give one ``error:`` line, exit 2, no files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fomm_kp.checkpoint import read_checkpoint
from fomm_kp.tracks import load_tracks
from fomm_kp.video import probe

from conftest import SyntheticClip, assert_one_error_line, files_under, run_cli, write_video, write_zero_frame_video

TINY_WHOLE_FRAME = """\
# the tiny built-in with whole frames (no localisation)
model:
  image_size: 32
  detector: {num_keypoints: 4, input_size: 32, block_expansion: 8, max_features: 32, num_blocks: 3}
  dense_motion: {input_size: 32, block_expansion: 8, max_features: 32, num_blocks: 3}
  generator: {block_expansion: 8, max_features: 32, num_down_blocks: 2, num_bottleneck_blocks: 1}
loss:
  scales: [1.0, 0.5]
train:
  batch_size: 4
  mixed_precision: false
data:
  localize: "off"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_whole.yaml"
    path.write_text(TINY_WHOLE_FRAME)
    return path


# ------------------------------------------------------------------------------------------
# One test per command.


def test_train_command(tmp_path: Path, disc_clip: SyntheticClip, config_file: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli(
        ["train", str(disc_clip.path), "--out", str(out), "--config", str(config_file), "--steps", "1", "--seed", "3",
         "--device", "cpu"],
        capsys, monkeypatch,
    )
    assert code == 0, err
    assert {"checkpoint.pt", "preview.png"} <= set(files_under(out))
    config, _, step, meta = read_checkpoint(out / "checkpoint.pt")
    assert step == 1 and config.train.seed == 3 and config.data.localize == "off"
    assert meta["video"] == str(disc_clip.path)
    assert "trained 1 steps" in err
    # --resume continues the same run.
    code, _, err = run_cli(["train", str(disc_clip.path), "--out", str(out), "--resume", "--steps", "2"], capsys, monkeypatch)
    assert code == 0, err
    assert read_checkpoint(out / "checkpoint.pt")[2] == 2


def test_train_command_on_several_videos(tmp_path: Path, disc_clip: SyntheticClip, config_file: Path, capsys,
                                         monkeypatch) -> None:
    other = write_video(tmp_path / "other.mp4", disc_clip.frames[::-1][:10])
    out = tmp_path / "run"
    code, _, err = run_cli(["train", str(disc_clip.path), str(other), "--out", str(out), "--config", str(config_file),
                            "--steps", "1", "--device", "cpu"], capsys, monkeypatch)
    assert code == 0, err
    meta = read_checkpoint(out / "checkpoint.pt").meta
    assert meta["videos"] == [str(disc_clip.path), str(other)] and meta["num_training_frames"] == 34
    code, _, err = run_cli(["train", str(disc_clip.path), str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "x"),
                            "--config", str(config_file)], capsys, monkeypatch)
    assert_one_error_line(code, err, "missing.mp4")
    assert not (tmp_path / "x").exists()


def test_track_command(tmp_path: Path, disc_clip: SyntheticClip, trained_checkpoint: Path, capsys, monkeypatch) -> None:
    out, overlay, table = tmp_path / "tracks.npz", tmp_path / "overlay.mp4", tmp_path / "tracks.csv"
    code, _, err = run_cli(
        ["track", str(disc_clip.path), "--checkpoint", str(trained_checkpoint), "--out", str(out), "--overlay", str(overlay),
         "--csv", str(table), "--stride", "2", "--batch-size", "5", "--device", "cpu"],
        capsys, monkeypatch,
    )
    assert code == 0, err
    assert files_under(tmp_path) == ["overlay.mp4", "tracks.csv", "tracks.npz"]
    tracks = load_tracks(out)
    assert tracks.keypoints.shape == (12, 1, 4, 2)
    np.testing.assert_array_equal(tracks.frame_indices, np.arange(0, 24, 2))
    assert np.isfinite(tracks.keypoints).all()
    info = probe(overlay)
    assert info.num_frames == 12
    assert info.width % 64 == 0 and info.width // 64 == info.height // 48  # small videos may be enlarged
    assert info.fps == pytest.approx(5.0)  # every second frame of a 10 fps clip
    assert len(table.read_text().splitlines()) == 3 + 12
    assert "tracked 12 frames x 4 keypoints" in err


def test_track_command_with_crop(tmp_path: Path, disc_clip: SyntheticClip, trained_checkpoint: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "tracks.npz"
    code, _, err = run_cli(
        ["track", str(disc_clip.path), "-m", str(trained_checkpoint), "-o", str(out), "--crop", "8,4,40,36", "--stop", "6"],
        capsys, monkeypatch,
    )
    assert code == 0, err
    keypoints = load_tracks(out).keypoints
    assert keypoints.shape == (6, 1, 4, 2)
    assert (keypoints[..., 0] >= 7.5).all() and (keypoints[..., 0] <= 39.5).all()
    assert (keypoints[..., 1] >= 3.5).all() and (keypoints[..., 1] <= 35.5).all()


def test_track_command_smooths_and_reports_where_keypoints_sit(tmp_path: Path, disc_clip: SyntheticClip,
                                                                trained_checkpoint: Path, capsys, monkeypatch) -> None:
    raw, smooth, overlay = tmp_path / "raw.npz", tmp_path / "smooth.npz", tmp_path / "smooth.mp4"
    code, _, err = run_cli(["track", str(disc_clip.path), "-m", str(trained_checkpoint), "-o", str(raw)], capsys, monkeypatch)
    assert code == 0, err
    assert "on the subject:" in " ".join(err.split())  # the console may wrap the line
    code, _, err = run_cli(["track", str(disc_clip.path), "-m", str(trained_checkpoint), "-o", str(smooth),
                            "--overlay", str(overlay), "--smooth", "5"], capsys, monkeypatch)
    assert code == 0, err
    assert "smoothed over 5 frames" in " ".join(err.split())
    before, after = load_tracks(raw), load_tracks(smooth)
    assert after.metadata["smoothing"]["window"] == 5 and "smoothing" not in before.metadata
    assert 0.0 <= before.metadata["on_subject"]["share"] <= 1.0
    steps = lambda t: np.abs(np.diff(t.keypoints, axis=0)).sum()  # noqa: E731
    assert steps(after) < steps(before)
    assert probe(overlay).num_frames == 24
    code, _, err = run_cli(["track", str(disc_clip.path), "-m", str(trained_checkpoint), "-o", str(tmp_path / "x.npz"),
                            "--smooth", "4"], capsys, monkeypatch)
    assert_one_error_line(code, err, "--smooth")
    assert not (tmp_path / "x.npz").exists()
    line = tmp_path / "line.npz"
    code, _, err = run_cli(["track", str(disc_clip.path), "-m", str(trained_checkpoint), "-o", str(line),
                            "--smooth", "5", "--smooth-order", "1"], capsys, monkeypatch)
    assert code == 0, err
    lined = load_tracks(line)
    assert lined.metadata["smoothing"]["order"] == 1 and after.metadata["smoothing"]["order"] == 2
    assert not np.allclose(lined.keypoints, after.keypoints, equal_nan=True)  # a line is not the quadratic
    for bad in (["--smooth", "5", "--smooth-order", "4"], ["--smooth", "3", "--smooth-order", "3"]):
        code, _, err = run_cli(["track", str(disc_clip.path), "-m", str(trained_checkpoint), "-o", str(tmp_path / "x.npz"),
                                *bad], capsys, monkeypatch)
        assert_one_error_line(code, err, "--smooth-order")
        assert not (tmp_path / "x.npz").exists()


@pytest.mark.slow
def test_demo_command(tmp_path: Path, capsys, monkeypatch) -> None:
    """``fomm-kp demo --steps 2`` on the first 64 frames of the bundled sample, with labelled
    segments inside them (the whole 563-frame clip costs minutes on one busy core, mostly
    tracking; ``make demo`` runs it in full)."""
    from fomm_kp import demo
    from fomm_kp.video import read_frames

    sample = demo.sample_video()
    _, frames = read_frames(sample, stop=64)
    short = write_video(tmp_path / "short" / "worm.mp4", frames, fps=probe(sample).fps)
    labels = tmp_path / "short" / "worm_labels.csv"
    labels.write_text("video,start_frame,end_frame,label\nworm,0,20,crawl\nworm,22,34,coil\n"
                      "worm,36,50,crawl\nworm,50,63,coil\n")
    monkeypatch.setattr(demo, "sample_video", lambda: short)
    monkeypatch.setattr(demo, "sample_labels", lambda: labels)
    out = tmp_path / "demo"
    code, shown, err = run_cli(["demo", "--out", str(out), "--steps", "2"], capsys, monkeypatch)
    assert code == 0, err
    assert "keypoints:" in shown and "of keypoints" in shown  # the on-subject diagnostic
    assert {"checkpoint.pt", "overlay.mp4", "preview.png", "tracks.csv", "tracks.npz"} <= set(files_under(out))
    assert not [name for name in files_under(out) if ".partial" in name or name.startswith(".")]
    config, _, step, meta = read_checkpoint(out / "checkpoint.pt")
    assert step == 2 and meta["video"] == str(short)
    assert config.model == demo_config_model()
    tracks = load_tracks(out / "tracks.npz")
    info = probe(out / "overlay.mp4")
    assert tracks.num_frames == info.num_frames == 64
    assert info.width % 128 == 0 and info.width // 128 == info.height // 96
    assert tracks.num_keypoints == config.model.detector.num_keypoints
    assert load_tracks(out / "tracks.csv").num_frames == 64


def demo_config_model():
    from fomm_kp.config import builtin_config

    return builtin_config("cpu").model


# ------------------------------------------------------------------------------------------
# Bad inputs: one error line, exit status 2, nothing (half-)written.


@pytest.mark.parametrize(("kind", "name"), [("cpu", "cpu"), ("cuda", "gpu_default")])
def test_train_without_config_uses_the_default_of_the_device(kind: str, name: str, tmp_path: Path,
                                                             disc_clip: SyntheticClip, capsys, monkeypatch) -> None:
    """No --config: the CLI hands train the CPU default, or on a CUDA GPU the GPU default (the GPU
    is pretended here: only the choice is checked, nothing runs on it)."""
    from types import SimpleNamespace

    from fomm_kp.cli import train_track
    from fomm_kp.config import builtin_config

    seen = {}

    def fake_train(video, out, **kwargs):
        seen.update(kwargs)
        return SimpleNamespace(step=0)

    monkeypatch.setattr(train_track, "train_with_progress", fake_train)
    monkeypatch.setattr(train_track, "device_kind", lambda device: kind)
    code, _, err = run_cli(["train", str(disc_clip.path), "-o", str(tmp_path / "run")], capsys, monkeypatch)
    assert code == 0, err
    assert seen["config"] == builtin_config(name)


def test_train_missing_video(tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli(["train", str(tmp_path / "missing.mp4"), "--out", str(out)], capsys, monkeypatch)
    assert_one_error_line(code, err, "video not found", "missing.mp4")
    assert files_under(out) == []


def test_train_text_file_named_mp4(tmp_path: Path, config_file: Path, capsys, monkeypatch) -> None:
    video = tmp_path / "notes.mp4"
    video.write_text("this is not a video\n")
    out = tmp_path / "run"
    code, _, err = run_cli(["train", str(video), "--out", str(out), "--config", str(config_file)], capsys, monkeypatch)
    assert_one_error_line(code, err, "cannot read video", "notes.mp4")
    assert files_under(out) == []


def test_train_zero_frame_video(tmp_path: Path, config_file: Path, capsys, monkeypatch) -> None:
    video = write_zero_frame_video(tmp_path / "zero.avi")
    out = tmp_path / "run"
    code, _, err = run_cli(["train", str(video), "--out", str(out), "--config", str(config_file)], capsys, monkeypatch)
    assert_one_error_line(code, err, "no frames", "zero.avi")
    assert files_under(out) == []


def test_train_unknown_config_key(tmp_path: Path, disc_clip: SyntheticClip, capsys, monkeypatch) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text("train:\n  stepz: 10\n")
    out = tmp_path / "run"
    code, _, err = run_cli(["train", str(disc_clip.path), "--out", str(out), "--config", str(config)], capsys, monkeypatch)
    assert_one_error_line(code, err, "stepz", str(config))
    assert files_under(out) == []


def test_train_wrong_type_in_config(tmp_path: Path, disc_clip: SyntheticClip, capsys, monkeypatch) -> None:
    config = tmp_path / "wrong.yaml"
    config.write_text("model:\n  detector:\n    num_keypoints: ten\n")
    out = tmp_path / "run"
    code, _, err = run_cli(["train", str(disc_clip.path), "--out", str(out), "--config", str(config)], capsys, monkeypatch)
    assert_one_error_line(code, err, "model.detector.num_keypoints", str(config), "integer")
    assert files_under(out) == []


def test_train_unknown_builtin_config(tmp_path: Path, disc_clip: SyntheticClip, capsys, monkeypatch) -> None:
    code, _, err = run_cli(["train", str(disc_clip.path), "--out", str(tmp_path / "run"), "--config", "huge"], capsys, monkeypatch)
    assert_one_error_line(code, err, "huge")


def test_train_resume_without_checkpoint(tmp_path: Path, disc_clip: SyntheticClip, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli(["train", str(disc_clip.path), "--out", str(out), "--resume"], capsys, monkeypatch)
    assert_one_error_line(code, err, "checkpoint not found")
    assert files_under(out) == []


def test_train_bad_crop(tmp_path: Path, disc_clip: SyntheticClip, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli(["train", str(disc_clip.path), "--out", str(out), "--crop", "1,2,3"], capsys, monkeypatch)
    assert_one_error_line(code, err, "--crop")
    assert files_under(out) == []


def test_usage_error_is_one_line(capsys, monkeypatch) -> None:
    code, _, err = run_cli(["train"], capsys, monkeypatch)
    assert_one_error_line(code, err, "video")
    code, _, err = run_cli(["train", "x.mp4", "--steps", "many"], capsys, monkeypatch)
    assert_one_error_line(code, err, "--steps")


def test_track_missing_checkpoint(tmp_path: Path, disc_clip: SyntheticClip, capsys, monkeypatch) -> None:
    out = tmp_path / "tracks.npz"
    code, _, err = run_cli(["track", str(disc_clip.path), "-m", str(tmp_path / "none.pt"), "-o", str(out)], capsys, monkeypatch)
    assert_one_error_line(code, err, "not found", "none.pt")
    assert files_under(tmp_path) == []


def test_track_checkpoint_that_is_not_one(tmp_path: Path, disc_clip: SyntheticClip, capsys, monkeypatch) -> None:
    fake = tmp_path / "fake.pt"
    fake.write_text("weights")
    code, _, err = run_cli(["track", str(disc_clip.path), "-m", str(fake), "-o", str(tmp_path / "t.npz")], capsys, monkeypatch)
    assert_one_error_line(code, err, "not a fomm_kp checkpoint")
    assert files_under(tmp_path) == ["fake.pt"]


def test_track_text_file_named_mp4(tmp_path: Path, trained_checkpoint: Path, capsys, monkeypatch) -> None:
    video = tmp_path / "notes.mp4"
    video.write_text("this is not a video\n")
    code, _, err = run_cli(
        ["track", str(video), "-m", str(trained_checkpoint), "-o", str(tmp_path / "t.npz"), "--overlay", str(tmp_path / "o.mp4")],
        capsys, monkeypatch,
    )
    assert_one_error_line(code, err, "cannot read video", "notes.mp4")
    assert files_under(tmp_path) == ["notes.mp4"]


def test_track_missing_video(tmp_path: Path, trained_checkpoint: Path, capsys, monkeypatch) -> None:
    code, _, err = run_cli(["track", str(tmp_path / "gone.mp4"), "-m", str(trained_checkpoint), "-o", str(tmp_path / "t.npz")], capsys, monkeypatch)
    assert_one_error_line(code, err, "video not found")
    assert files_under(tmp_path) == []


def test_track_zero_frame_video(tmp_path: Path, trained_checkpoint: Path, capsys, monkeypatch) -> None:
    video = write_zero_frame_video(tmp_path / "zero.avi")
    code, _, err = run_cli(["track", str(video), "-m", str(trained_checkpoint), "-o", str(tmp_path / "t.npz")], capsys, monkeypatch)
    assert_one_error_line(code, err, "no frames")
    assert files_under(tmp_path) == ["zero.avi"]


def test_track_unknown_output_format(tmp_path: Path, disc_clip: SyntheticClip, trained_checkpoint: Path, capsys, monkeypatch) -> None:
    code, _, err = run_cli(
        ["track", str(disc_clip.path), "-m", str(trained_checkpoint), "-o", str(tmp_path / "t.txt"), "--overlay", str(tmp_path / "o.mp4")],
        capsys, monkeypatch,
    )
    assert_one_error_line(code, err, "t.txt")
    assert files_under(tmp_path) == []


def test_track_bad_options(tmp_path: Path, disc_clip: SyntheticClip, trained_checkpoint: Path, capsys, monkeypatch) -> None:
    base = ["track", str(disc_clip.path), "-m", str(trained_checkpoint), "-o", str(tmp_path / "t.npz")]
    code, _, err = run_cli(base + ["--localize", "maybe"], capsys, monkeypatch)
    assert_one_error_line(code, err, "--localize")
    code, _, err = run_cli(base + ["--crop", "a,b,c,d"], capsys, monkeypatch)
    assert_one_error_line(code, err, "--crop")
    code, _, err = run_cli(base + ["--start", "100"], capsys, monkeypatch)
    assert_one_error_line(code, err, "no frames to track")
    code, _, err = run_cli(base + ["--stride", "0"], capsys, monkeypatch)
    assert_one_error_line(code, err, "stride")
    assert files_under(tmp_path) == []


@pytest.mark.slow  # a fresh interpreter imports torch: several seconds on a busy 2-core machine
def test_console_script_error_in_a_fresh_process(tmp_path: Path) -> None:
    """The real entry point in its own process: logging configured by ``main``, nothing else on stderr."""
    video = tmp_path / "notes.mp4"
    video.write_text("not a video")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from fomm_kp.cli import main; sys.argv[0] = 'fomm-kp'; main()",
         "train", str(video), "--out", str(tmp_path / "run"), "--config", "tiny"],
        capture_output=True, text=True, timeout=120,
    )
    assert_one_error_line(result.returncode, result.stderr, "cannot read video")
    assert result.stdout == ""
    assert files_under(tmp_path) == ["notes.mp4"]
