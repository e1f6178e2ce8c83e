"""Ctrl-C in the middle of the work: exit 130 with one ``error:`` line, and no partial output (the
overlay video, tracks, ONNX file, student, report folders, motifs, features, animation)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import digests, files_under, run_cli, write_video


def _interrupt_on(monkeypatch: pytest.MonkeyPatch, target: str, after: int = 0) -> list[int]:
    """Make ``module:function`` raise KeyboardInterrupt on its call number ``after`` (0: the first)."""
    import importlib

    module_name, name = target.split(":")
    module = importlib.import_module(module_name)
    original = getattr(module, name)
    calls = [0]

    def interrupted(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, interrupted)
    return calls


CASES = {
    "track-overlay": (["track", "{video}", "-m", "{ckpt}", "-o", "{out}/t.npz", "--overlay", "{out}/o.mp4",
                       "--csv", "{out}/t.csv", "--batch-size", "4"], "fomm_kp.runtime.tracking:_detect", 2),
    "track-overlay-new-folders": (["track", "{video}", "-m", "{ckpt}", "-o", "{out}/a/t.npz", "--overlay",
                                   "{out}/b/c/o.mp4", "--batch-size", "4"], "fomm_kp.runtime.tracking:_detect", 2),
    "score-new-folders": (["score", "{npz}", "--classifier", "{clf}", "-o", "{out}/x/y/report"],
                          "fomm_kp.behaviour.report:plot_time_budget", 0),
    "track-saving": (["track", "{video}", "-m", "{ckpt}", "-o", "{out}/t.npz"], "fomm_kp.tracks.npz:_write_npz", 0),
    "track-second-file": (["track", "{video}", "-m", "{ckpt}", "-o", "{out}/t.npz", "--csv", "{out}/t.csv"],
                          "fomm_kp.tracks.dlc:_write_dlc_csv", 0),
    "export-comparing": (["export", "{ckpt}", "--onnx", "{out}/m.onnx"], "fomm_kp.deploy.export:compare_onnx", 0),
    "distill-reporting": (["distill", "{video}", "-t", "{ckpt}", "-o", "{out}/s.pt", "--steps", "2", "--batch-size",
                           "4", "--report", "{out}/r.json"], "fomm_kp.deploy.distill:_report", 0),
    "distill-training": (["distill", "{video}", "-t", "{ckpt}", "-o", "{out}/s.pt", "--steps", "50", "--batch-size",
                          "4"], "fomm_kp.deploy.distill:distill_losses", 1),
    "score-plotting": (["score", "{npz}", "--classifier", "{clf}", "-o", "{out}/report"],
                       "fomm_kp.behaviour.report:plot_time_budget", 0),
    "score-labelling": (["score", "{npz}", "--classifier", "{clf}", "-o", "{out}/report"],
                        "fomm_kp.behaviour.report:load_source", 0),
    "motifs-writing": (["motifs", "{npz}", "-o", "{out}/motifs", "--no-clips"],
                       "fomm_kp.behaviour.motifs:save_classifier", 0),
    "features-saving": (["features", "{npz}", "-o", "{out}/f.npz", "--spectrogram", "{out}/s.png"],
                        "fomm_kp.cli.behaviour:plot_keypoint_spectrogram", 0),
    "animate-rendering": (["animate", "{video}", "{video}", "-m", "{ckpt}", "-o", "{out}/a.mp4", "--batch-size", "4"],
                          "fomm_kp.animation.render:images_to_frames", 2),
    "evaluate-behaviour": (["evaluate", "behaviour", "{clips}", "-o", "{out}/eval", "--no-pixel", "--episodes", "2",
                            "--shots", "1"],
                           "fomm_kp.evaluation.behaviour:plot_confusion", 0),
    "train-reading-frames": (["train", "{video}", "-o", "{out}/run", "--config", "{config}", "--steps", "1"],
                             "fomm_kp.training.dataset:resize_frame", 3),
    "fit-saving": (["fit", "{npz}", "--labels", "{labels}", "-o", "{out}/c.npz"], "fomm_kp.cli.behaviour:save_classifier", 0),
    "classify-writing": (["classify", "{npz}", "--classifier", "{clf}", "--per-frame", "{out}/p.csv"],
                         "fomm_kp.behaviour.frame_labels:atomic_write", 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ctrl_c_leaves_nothing(case: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    args, target, after = CASES[case]
    calls = _interrupt_on(monkeypatch, target, after)
    out = tmp_path / "out"
    out.mkdir()
    before = digests(hostile_world.folder)
    code, _, err = run_cli([a.format(**hostile_world.paths(out)) for a in args], capsys, monkeypatch)
    assert calls[0] > after, f"{target} was never reached: the case tests nothing"
    assert code == 130, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "interrupt" in errors[0], err
    assert "Traceback" not in err
    assert files_under(out) == [] and list(out.iterdir()) == [], list(out.rglob("*"))
    assert digests(hostile_world.folder) == before


@pytest.mark.slow
def test_sigint_during_tracking_leaves_no_overlay(tmp_path: Path, trained_checkpoint: Path) -> None:
    """A real SIGINT to ``fomm-kp track``: exit 130, one line, no tracks and no partial overlay."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (300, 48, 64, 3), dtype=np.uint8)
    video = write_video(tmp_path / "long.mp4", frames, fps=30.0)
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-c", "import sys; from fomm_kp.cli import main; sys.argv[0] = 'fomm-kp'; main()",
               "track", str(video), "-m", str(trained_checkpoint), "-o", str(out / "t.npz"), "--overlay",
               str(out / "o.mp4"), "--batch-size", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not list(out.glob(".o.partial*")):
        time.sleep(0.05)  # the overlay's temporary file appears with the first tracked frame
    assert process.poll() is None, process.communicate()
    assert list(out.glob(".o.partial*")), "tracking did not start"
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "interrupt" in errors[0], err
    assert "Traceback" not in err
    assert list(out.iterdir()) == []
