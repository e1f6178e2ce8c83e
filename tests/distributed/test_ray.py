"""Many videos on a real local Ray instance (2 workers, started once for this module on 127.0.0.1):
the same bytes as in this process, finished videos skipped, a worker killed with SIGKILL mid-run
retried with no partial output, a broken video reported without stopping the others."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from fomm_kp.distributed import RunOptions, TrackJob, run_many

from conftest import disc_frames, write_video

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'fomm_kp[ray]'")
pytestmark = pytest.mark.slow  # a Ray instance starts in seconds, its workers in more

COUNT = 8
TWO_WORKERS = RunOptions(workers=2)
BATCH = 2  # small batches: each task takes long enough to be killed in the middle


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             object_store_memory=128 * 1024**2, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """8 short disc videos of different lengths (tracking each takes a fraction of a second)."""
    folder = tmp_path_factory.mktemp("videos")
    return [write_video(folder / f"video{i}.mp4", disc_frames(40 + 8 * i, seed=i)[0]) for i in range(COUNT)]


@pytest.fixture(scope="module")
def serial_tracks(tmp_path_factory: pytest.TempPathFactory, videos: list[Path], trained_checkpoint: Path) -> Path:
    folder = tmp_path_factory.mktemp("serial")
    summary = run_many(videos, TrackJob(trained_checkpoint, folder, batch_size=BATCH), RunOptions(workers=1))
    assert summary.counts["done"] == COUNT and summary.engine == "in this process"
    return folder


def assert_same_files(folder: Path, expected: Path) -> None:
    """Exactly the 8 tracks files, each the same bytes as the serial run's (no temporaries, nothing partial)."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in expected.iterdir())
    for path in expected.iterdir():
        assert (folder / path.name).read_bytes() == path.read_bytes(), path.name


def test_two_ray_workers_give_the_serial_bytes_then_skip_everything(ray_instance, videos, trained_checkpoint,
                                                                    serial_tracks, tmp_path) -> None:
    job = TrackJob(trained_checkpoint, tmp_path / "tracks", batch_size=BATCH)
    first = run_many(videos, job, TWO_WORKERS)
    assert first.counts == {"done": COUNT, "skipped": 0, "failed": 0}, [o.error for o in first.failed]
    assert first.engine.startswith("Ray")
    assert_same_files(tmp_path / "tracks", serial_tracks)
    assert [o.frames for o in first.outcomes] == [40 + 8 * i for i in range(COUNT)]
    second = run_many(videos, job, TWO_WORKERS)
    assert second.counts == {"done": 0, "skipped": COUNT, "failed": 0}
    assert second.frames == 0


def ray_task_processes() -> list[int]:
    """Ray worker processes running our task now (Ray titles them ``ray::run_one`` while they do)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::run_one"):
                pids.append(int(entry.name))
    return pids


def test_a_worker_killed_mid_run_is_retried_and_leaves_no_partial_output(ray_instance, videos, trained_checkpoint,
                                                                         serial_tracks, tmp_path, capfd) -> None:
    killed: list[int] = []
    stop = threading.Event()

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            running = ray_task_processes()
            if running:
                time.sleep(0.05)  # well inside the task
                if running[0] in ray_task_processes():  # still running it: kill it now
                    os.kill(running[0], signal.SIGKILL)
                    killed.append(running[0])
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    try:
        summary = run_many(videos, TrackJob(trained_checkpoint, tmp_path / "tracks", batch_size=BATCH), TWO_WORKERS)
    finally:
        stop.set()
        killer.join()
    assert killed, "no Ray worker was seen running a task"
    assert capfd.readouterr().out == ""  # Ray's message about the dead worker went to stderr
    assert summary.counts == {"done": COUNT, "skipped": 0, "failed": 0}, [o.error for o in summary.failed]
    assert_same_files(tmp_path / "tracks", serial_tracks)


def test_a_broken_video_fails_alone(ray_instance, videos, trained_checkpoint, tmp_path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    summary = run_many([videos[0], broken, videos[1]], TrackJob(trained_checkpoint, tmp_path / "tracks"), TWO_WORKERS)
    assert [o.status for o in summary.outcomes] == ["done", "failed", "done"]
    error = summary.outcomes[1].error
    assert "broken.mp4" in error and "\n" not in error
    assert sorted(p.name for p in (tmp_path / "tracks").iterdir()) == ["video0.npz", "video1.npz"]


def test_the_track_command_on_ray_prints_only_its_table(ray_instance, videos, trained_checkpoint, tmp_path, capsys,
                                                        monkeypatch) -> None:
    from conftest import run_cli

    code, stdout, err = run_cli(["track", str(videos[0].parent / "video[01].mp4"), "-m", str(trained_checkpoint),
                                 "--out", str(tmp_path / "tracks"), "--workers", "2"], capsys, monkeypatch)
    assert code == 0, err
    assert stdout.lstrip().startswith("tracking: 2 sources") and "Ray" in stdout.splitlines()[0]
    rows = [line.split("│")[1].strip() for line in stdout.splitlines() if line.startswith("│")]
    assert rows == ["done", "skipped", "failed", "all (wall time)"], stdout
    assert sorted(p.name for p in (tmp_path / "tracks").iterdir()) == ["video0.npz", "video1.npz"]


def test_score_labels_a_study_on_ray_then_reuses_the_labels(ray_instance, tmp_path, capsys, monkeypatch) -> None:
    from conftest import behaviour_tracks, run_cli

    from fomm_kp.tracks import save_tracks

    study = tmp_path / "study"
    for i in range(3):
        save_tracks(behaviour_tracks(["oscillating", "circling"], seed=10 + i, name=f"s{i}.mp4"), study / f"s{i}.npz")
    train = save_tracks(behaviour_tracks(["circling", "oscillating"] * 2, seed=1, name="train.mp4"), tmp_path / "train.npz")
    labels = tmp_path / "labels.csv"
    labels.write_text("video,start_frame,end_frame,label\ntrain,0,89,circling\ntrain,90,179,oscillating\n")
    assert run_cli(["fit", str(train), "--labels", str(labels), "--out", str(tmp_path / "clf.npz")], capsys, monkeypatch)[0] == 0
    args = ["score", str(study), "--classifier", str(tmp_path / "clf.npz"), "--out", str(tmp_path / "report"),
            "--workers", "2"]
    code, stdout, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    assert "labelling: 3 sources" in stdout and "Ray" in stdout
    report = (tmp_path / "report" / "report.csv").read_text().splitlines()
    assert report[0].startswith("video,group,behaviour") and {line.split(",")[0] for line in report[1:]} == {"s0", "s1", "s2"}
    code, stdout, err = run_cli(args, capsys, monkeypatch)  # the per-frame labels are there: nothing to redo
    assert code == 0 and "│ skipped         │       3 │" in stdout, stdout
    assert (tmp_path / "report" / "report.csv").read_text().splitlines() == report
