"""Hostile output places: read-only and immutable folders, a path under a file, a folder where a
file goes, a folder of someone else's files; leftovers after a failure; stale temporaries on resume.
Each refusal is one ``error:`` line before any work; nothing is written, no input changes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import assert_one_error_line, assert_refused, digests, files_under, run_cli

OUTPUTS = {
    "track-out": ["track", "{video}", "-m", "{ckpt}", "-o", "{L}/t.npz"],
    "track-overlay": ["track", "{video}", "-m", "{ckpt}", "-o", "{out}/t.npz", "--overlay", "{L}/o.mp4"],
    "track-csv": ["track", "{video}", "-m", "{ckpt}", "-o", "{out}/t.npz", "--csv", "{L}/t.csv"],
    "features": ["features", "{npz}", "-o", "{L}/f.npz"],
    "features-spectrogram": ["features", "{npz}", "-o", "{out}/f.npz", "--spectrogram", "{L}/s.png"],
    "fit": ["fit", "{npz}", "--labels", "{labels}", "-o", "{L}/c.npz"],
    "classify": ["classify", "{npz}", "--classifier", "{clf}", "--per-frame", "{L}/p.csv"],
    "export": ["export", "{ckpt}", "--onnx", "{L}/m.onnx"],
    "distill": ["distill", "{video}", "-t", "{ckpt}", "-o", "{L}/s.pt", "--steps", "1"],
    "distill-report": ["distill", "{video}", "-t", "{ckpt}", "-o", "{out}/s.pt", "--steps", "1", "--report", "{L}/r.json"],
    "train": ["train", "{video}", "-o", "{L}/run", "--config", "{config}", "--steps", "1"],
    "score": ["score", "{npz}", "--classifier", "{clf}", "-o", "{L}/report"],
    "motifs": ["motifs", "{npz}", "-o", "{L}/motifs", "--no-clips"],
    "animate": ["animate", "{video}", "{video}", "-m", "{ckpt}", "-o", "{L}/a.mp4"],
    "reconstruction": ["evaluate", "reconstruction", "{video}", "-m", "{ckpt}", "-o", "{L}/r.json"],
    "keypoints": ["evaluate", "keypoints", "{csv}", "--tracks", "{npz}", "--json", "{L}/e.json"],
    "behaviour": ["evaluate", "behaviour", "{labels}", "-o", "{L}/eval"],
    "demo": ["demo", "-o", "{L}/demo", "--steps", "1"],
}


def _lock(folder: Path, how: str) -> None:
    if how == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders (the immutable case covers it)")
        folder.chmod(0o555)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("chattr +i is not allowed here")


def _unlock(folder: Path) -> None:
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.chmod(0o755)


@pytest.mark.parametrize("how", ["read-only", "immutable"])
@pytest.mark.parametrize("command", sorted(OUTPUTS))
def test_locked_output_folder(command: str, how: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    _lock(locked, how)
    try:
        args = [a.replace("{L}", str(locked)) for a in OUTPUTS[command]]
        assert_refused(hostile_world, args, tmp_path / "out", capsys, monkeypatch, str(locked))
        assert not list(locked.iterdir())
    finally:
        _unlock(locked)


@pytest.mark.parametrize("command", sorted(OUTPUTS))
def test_output_under_a_file(command: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("I am a file")
    args = [a.replace("{L}", str(blocker / "sub")) for a in OUTPUTS[command]]
    assert_refused(hostile_world, args, tmp_path / "out", capsys, monkeypatch, "a_file")
    assert blocker.read_text() == "I am a file"


FILE_OUTPUTS = ["track-out", "track-overlay", "track-csv", "features", "fit", "classify", "export", "distill",
                "animate", "reconstruction", "keypoints"]


@pytest.mark.parametrize("command", FILE_OUTPUTS)
def test_folder_where_a_file_goes(command: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    folder = tmp_path / "out" / "taken"
    args = [a.replace("{L}/", str(folder) + "/").replace("{L}", str(folder)) for a in OUTPUTS[command]]
    target = next(Path(a) for a in args if a.startswith(str(folder)))
    target.mkdir(parents=True)
    (target / "keep.txt").write_text("mine")
    before = digests(tmp_path / "out")
    code, _, err = run_cli([a.format(**hostile_world.paths(tmp_path / "out")) for a in args], capsys, monkeypatch)
    assert_one_error_line(code, err, "folder")
    assert digests(tmp_path / "out") == before


FOLDER_COMMANDS = {
    "score": (["score", "{npz}", "--classifier", "{clf}", "-o", "{F}"], "report.json"),
    "motifs": (["motifs", "{npz}", "-o", "{F}", "--no-clips"], "motifs.csv"),
    "behaviour": (["evaluate", "behaviour", "{clips}", "-o", "{F}", "--no-pixel", "--episodes", "2", "--shots", "1"],
                  "results.json"),
    "demo": (["demo", "-o", "{F}", "--steps", "1"], "tracks.npz"),
}


@pytest.mark.parametrize("command", sorted(FOLDER_COMMANDS))
def test_folder_of_other_files_is_refused(command: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    folder = tmp_path / "out" / "theirs"
    folder.mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work")
    args = [a.replace("{F}", str(folder)) for a in FOLDER_COMMANDS[command][0]]
    before = digests(tmp_path / "out")
    code, _, err = run_cli([a.format(**hostile_world.paths(tmp_path / "out")) for a in args], capsys, monkeypatch)
    assert_one_error_line(code, err, "thesis.tex")
    assert digests(tmp_path / "out") == before


@pytest.mark.parametrize("command", ["score", "motifs", "behaviour"])
def test_earlier_output_is_updated_and_other_files_kept(command: str, hostile_world, tmp_path: Path, capsys,
                                                       monkeypatch) -> None:
    folder = tmp_path / "report"
    args = [a.replace("{F}", str(folder)).format(**hostile_world.paths(tmp_path)) for a in FOLDER_COMMANDS[command][0]]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    (folder / "notes.txt").write_text("mine")
    first = digests(folder)
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    assert (folder / "notes.txt").read_text() == "mine"
    assert sorted(digests(folder)) == sorted(first)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_failed_motifs_leave_nothing(hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    # The tracks name a video that is not there: the example clips cannot be cut, after the clustering.
    assert_refused(hostile_world, ["motifs", "{npz}", "-o", "{out}/motifs"], tmp_path / "out", capsys, monkeypatch,
                   "not found")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_resume_removes_stale_temporaries(hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    args = ["train", str(hostile_world.folder / "video.mp4"), "-o", str(out)]
    code, _, err = run_cli(args + ["--config", str(hostile_world.folder / "config.yaml"), "--steps", "1"], capsys,
                           monkeypatch)
    assert code == 0, err
    stale = [out / ".checkpoint.pt.k1ll3d__.pt", out / ".preview.png.abcd1234.png"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    code, _, err = run_cli(args + ["--resume", "--steps", "2"], capsys, monkeypatch)
    assert code == 0, err
    assert not any(path.exists() for path in stale)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def _checkpoint_with(world: Path, out: Path, change) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    payload = torch.load(world / "checkpoint.pt", weights_only=True)
    change(payload)
    torch.save(payload, out / "checkpoint.pt")
    return out / "checkpoint.pt"


RESUMES = {
    "other-shapes": lambda p: p["config"]["model"]["detector"].update(num_keypoints=3),
    "optimizer-of-other-shapes": lambda p: p["state_dicts"]["optimizer"]["state"][0].update(
        exp_avg=torch.zeros(1, 2, 3)),
    "optimizer-garbage": lambda p: p["state_dicts"].update(optimizer={"state": 3, "param_groups": "x"}),
    "step-past-the-end": lambda p: p.update(step=10**6),
}


@pytest.mark.parametrize("case", sorted(RESUMES))
def test_hostile_resume(case: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "out" / "run"
    checkpoint = _checkpoint_with(hostile_world.folder, out, RESUMES[case])
    before = digests(out)
    code, _, err = run_cli(["train", str(hostile_world.folder / "video.mp4"), "-o", str(out), "--resume", "--steps", "2"],
                           capsys, monkeypatch)
    assert_one_error_line(code, err, str(checkpoint) if case != "step-past-the-end" else "nothing to do")
    assert digests(out) == before


def test_resume_with_config_is_refused(hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "out" / "run"
    _checkpoint_with(hostile_world.folder, out, lambda p: None)
    assert_refused(hostile_world, ["train", "{video}", "-o", str(out), "--resume", "--config", "{config}"],
                   tmp_path / "elsewhere", capsys, monkeypatch, "--config")


def test_checkpoint_path_that_is_a_folder(hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "out" / "run" / "checkpoint.pt").mkdir(parents=True)
    code, _, err = run_cli(["train", str(hostile_world.folder / "video.mp4"), "-o", str(tmp_path / "out" / "run"),
                            "--config", "tiny", "--steps", "1", "--overwrite"], capsys, monkeypatch)
    assert_one_error_line(code, err, "checkpoint.pt")
    assert files_under(tmp_path / "out") == []
