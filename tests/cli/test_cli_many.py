"""Several videos per command: ``fomm-kp track / features / classify / score`` on folders, globs and
list files, in this process (``--workers 1``) and on Ray (``--workers 2``): outputs per source,
finished ones skipped, a failing one reported on its own line, the summary table on stdout, Ray's
own output off stdout, and Ray shut down cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fomm_kp.behaviour.features import load_features
from fomm_kp.tracks import load_tracks, save_tracks

from conftest import behaviour_tracks, disc_frames, run_cli, write_video

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    for i in range(3):
        write_video(folder / f"mouse{i}.mp4", disc_frames(16 + 4 * i, seed=i)[0])
    return folder


def test_track_a_folder_then_skip_it_then_report_a_broken_video(video_folder, trained_checkpoint, tmp_path, capsys,
                                                                monkeypatch) -> None:
    out = tmp_path / "tracks"
    args = ["track", str(video_folder), "-m", str(trained_checkpoint), "--out", str(out), "--workers", "1"]
    code, stdout, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["mouse0.npz", "mouse1.npz", "mouse2.npz"]
    assert load_tracks(out / "mouse2.npz").num_frames == 24
    assert "done" in stdout and "frames/s" in stdout and "in this process" in stdout
    code, stdout, err = run_cli(args, capsys, monkeypatch)
    assert code == 0 and "│ skipped         │       3 │" in stdout, stdout
    broken = tmp_path / "list" / "broken.mp4"
    broken.parent.mkdir()
    broken.write_bytes(b"garbage")
    listing = tmp_path / "list" / "videos.txt"
    listing.write_text(f"{video_folder / 'mouse0.mp4'}\nbroken.mp4\n")
    code, stdout, err = run_cli(["track", str(listing), "-m", str(trained_checkpoint), "--out", str(tmp_path / "t2"),
                                 "--workers", "1"], capsys, monkeypatch)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and errors[0].startswith(f"error: {broken}: "), err
    assert sorted(p.name for p in (tmp_path / "t2").iterdir()) == ["mouse0.npz"]


def test_many_videos_refuse_single_file_options(video_folder, trained_checkpoint, tmp_path, capsys, monkeypatch) -> None:
    from conftest import assert_one_error_line

    glob = str(video_folder / "*.mp4")
    code, _, err = run_cli(["track", glob, "-m", str(trained_checkpoint), "--out", str(tmp_path / "x.npz")],
                           capsys, monkeypatch)
    assert_one_error_line(code, err, "--out names a folder")
    code, _, err = run_cli(["track", glob, "-m", str(trained_checkpoint), "--overlay", str(tmp_path / "o.mp4")],
                           capsys, monkeypatch)
    assert_one_error_line(code, err, "--overlay and --csv take one video")
    assert not list(tmp_path.iterdir())


def test_features_and_classify_many_tracks_files(tmp_path, capsys, monkeypatch) -> None:
    study = tmp_path / "study"
    for i in range(2):
        save_tracks(behaviour_tracks(["oscillating", "circling"], seed=10 + i, name=f"s{i}.mp4"), study / f"s{i}.npz")
    code, stdout, err = run_cli(["features", str(study), "--out", str(tmp_path / "features"), "--workers", "1"],
                                capsys, monkeypatch)
    assert code == 0, err
    assert load_features(tmp_path / "features" / "s1.npz").num_windows > 10
    train = save_tracks(behaviour_tracks(["circling", "oscillating"] * 2, seed=1, name="train.mp4"), tmp_path / "train.npz")
    labels = tmp_path / "labels.csv"
    labels.write_text("video,start_frame,end_frame,label\ntrain,0,89,circling\ntrain,90,179,oscillating\n")
    assert run_cli(["fit", str(train), "--labels", str(labels), "--out", str(tmp_path / "clf.npz")], capsys, monkeypatch)[0] == 0
    code, stdout, err = run_cli(["classify", str(study / "s0.npz"), str(study / "s1.npz"), "--classifier",
                                 str(tmp_path / "clf.npz"), "--per-frame", str(tmp_path / "labels"), "--workers", "1"],
                                capsys, monkeypatch)
    assert code == 0, err
    lines = (tmp_path / "labels" / "s1.csv").read_text().splitlines()
    assert lines[0] == "frame,time_s,label,p_circling,p_oscillating" and len(lines) == 1 + 180


def ray_processes() -> set[int]:
    """Processes of any Ray instance on this machine (raylet, GCS, agents, workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if command.startswith(b"ray::") or b"/ray/core/src/ray/" in command or b"ray/_private/" in command:
                found.add(int(entry.name))
    return found


def wait_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = {pid for pid in pids if Path(f"/proc/{pid}").exists() and b"(Z)" not in Path(f"/proc/{pid}/stat").read_bytes()[:64]}
        if not left:
            return left
        time.sleep(0.2)
    return left


def cli_process(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "fomm_kp", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=REPO)


@pytest.mark.slow
def test_ray_from_the_command_line_ends_cleanly_on_ctrl_c(video_folder, trained_checkpoint,
                                                                         tmp_path) -> None:
    pytest.importorskip("ray")
    before = ray_processes()
    args = ["track", str(video_folder), "-m", str(trained_checkpoint), "--workers", "2", "--batch-size", "1"]
    # Ctrl-C once tasks run: exit 130, Ray shut down, no output half-written.
    interrupted = cli_process([*args, "--out", str(tmp_path / "again")])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(
            Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::run_one")
            for pid in ray_processes() - before if Path(f"/proc/{pid}").exists()):
        time.sleep(0.05)
    interrupted.send_signal(signal.SIGINT)
    stdout, stderr = (text.decode() for text in interrupted.communicate(timeout=120))
    assert interrupted.returncode == 130, stderr
    assert stderr.rstrip().splitlines()[-1] == "error: interrupted"
    assert stdout == ""  # nothing of Ray's start-up or shutdown on stdout
    assert not wait_gone(ray_processes() - before, 20), "Ray processes left after Ctrl-C"
    written = list((tmp_path / "again").glob("*")) if (tmp_path / "again").exists() else []
    for path in written:
        assert not path.name.startswith("."), path
        assert np.load(path)["keypoints"].shape[0] > 0
