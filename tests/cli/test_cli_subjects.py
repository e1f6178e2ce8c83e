"""Several subjects from the command line: ``train --subjects``, ``track --subjects`` with NWB subject
metadata, ``interactions``; bad inputs give one ``error:`` line, exit 2 and no files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fomm_kp.checkpoint import read_checkpoint
from fomm_kp.tracks import Tracks, load_tracks, save_tracks

from conftest import assert_one_error_line, crossing_frames, files_under, run_cli, write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("cli_subjects") / "pair.mp4", crossing_frames(24, "cross")[0])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, clip: Path) -> Path:
    from fomm_kp import api
    from fomm_kp.config import builtin_config
    import dataclasses

    config = builtin_config("tiny")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, subjects=2, localize="on"))
    folder = tmp_path_factory.mktemp("trained_pair")
    api.train(clip, folder, config=config, steps=1, device="cpu")
    return folder / "checkpoint.pt"


def test_train_with_subjects(tmp_path: Path, clip: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli(["train", str(clip), "--out", str(out), "--config", "tiny", "--steps", "1", "--subjects",
                            "auto", "--device", "cpu"], capsys, monkeypatch)
    assert code == 0, err
    config, _, _, meta = read_checkpoint(out / "checkpoint.pt")
    assert config.data.subjects == "auto" and meta["subjects"] == 2 and meta["localized"]


def test_track_several_subjects_to_npz_and_nwb(tmp_path: Path, clip: Path, checkpoint: Path, capsys, monkeypatch) -> None:
    pytest.importorskip("pynwb")
    code, _, err = run_cli(["track", str(clip), "-m", str(checkpoint), "--out", str(tmp_path / "t.npz"),
                            "--overlay", str(tmp_path / "o.mp4")], capsys, monkeypatch)
    assert code == 0, err
    tracks = load_tracks(tmp_path / "t.npz")
    assert tracks.num_subjects == 2 and tracks.identities is not None and "of 2 subjects" in err
    code, _, err = run_cli(["track", str(clip), "-m", str(checkpoint), "--out", str(tmp_path / "t.nwb"), "--subjects",
                            "3", "--subject-id", "fly1,fly2,fly3", "--species", "Drosophila melanogaster", "--sex", "F"],
                           capsys, monkeypatch)
    assert code == 0, err
    written = sorted(p for p in files_under(tmp_path) if p.endswith(".nwb"))
    assert written == ["t_subject0.nwb", "t_subject1.nwb", "t_subject2.nwb"]
    import pynwb

    with pynwb.NWBHDF5IO(str(tmp_path / "t_subject2.nwb"), "r") as io:
        nwbfile = io.read()
        assert nwbfile.subject.subject_id == "fly3" and nwbfile.subject.species == "Drosophila melanogaster"
        assert nwbfile.subject.sex == "F" and "PoseEstimation" in nwbfile.processing["behavior"].data_interfaces


@pytest.mark.parametrize("args, fragment", [
    (["--subjects", "0"], "--subjects must be between 1 and 64"),
    (["--subjects", "two"], "--subjects must be a whole number or auto"),
    (["--subjects", "2", "--crop", "0,0,10,10"], "--subjects and --crop exclude each other"),
    (["--sex", "male"], "sex must be M, F, O or U"),
    (["--subject-id", "a/b"], "must not contain '/'"),
])
def test_track_bad_options(tmp_path: Path, clip: Path, checkpoint: Path, capsys, monkeypatch, args, fragment) -> None:
    out = tmp_path / "out"
    code, _, err = run_cli(["track", str(clip), "-m", str(checkpoint), "--out", str(out / "t.nwb"), *args],
                           capsys, monkeypatch)
    assert_one_error_line(code, err, fragment)
    assert files_under(out) == []


def test_train_bad_subjects(tmp_path: Path, clip: Path, capsys, monkeypatch) -> None:
    code, _, err = run_cli(["train", str(clip), "--out", str(tmp_path / "run"), "--subjects", "99"], capsys, monkeypatch)
    assert_one_error_line(code, err, "--subjects must be between 1 and 64")
    assert files_under(tmp_path) == []


def test_interactions_command(tmp_path: Path, capsys, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 100, (30, 2, 3, 2)).astype(np.float32)
    path = save_tracks(Tracks(kp, np.ones((30, 2, 3)), np.arange(30), 10.0), tmp_path / "pair.npz")
    code, _, err = run_cli(["interactions", str(path), "--out", str(tmp_path / "i.csv"), "--graphs",
                            str(tmp_path / "g.json"), "--window", "1"], capsys, monkeypatch)
    assert code == 0, err
    header = (tmp_path / "i.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["start_frame", "end_frame"] and "subject0~subject1.contact.seconds@1s" in header
    assert len(json.loads((tmp_path / "g.json").read_text())["windows"]) > 1
    one = save_tracks(Tracks(kp[:, :1], np.ones((30, 1, 3)), np.arange(30), 10.0), tmp_path / "one.npz")
    code, _, err = run_cli(["interactions", str(one), "--out", str(tmp_path / "bad" / "i.csv")], capsys, monkeypatch)
    assert_one_error_line(code, err, "two or more subjects")
    assert files_under(tmp_path / "bad") == []
    code, _, err = run_cli(["interactions", str(path), "--out", str(tmp_path / "bad" / "i.csv"), "--heading", "kp0"],
                           capsys, monkeypatch)
    assert_one_error_line(code, err, "--heading must be two keypoint names")


@pytest.mark.parametrize("args, fragment", [
    (["--stride", "0"], "--stride must be"),
    (["--window", "nan"], "--window must be"),
    (["--contact-distance", "-1"], "--contact-distance must be"),
    (["--graphs", "g.txt"], "the file name must end in .json"),
])
def test_interactions_bad_options(tmp_path: Path, capsys, monkeypatch, args, fragment) -> None:
    kp = np.random.default_rng(1).uniform(0, 100, (20, 2, 3, 2)).astype(np.float32)
    path = save_tracks(Tracks(kp, np.ones((20, 2, 3)), np.arange(20), 10.0), tmp_path / "pair.npz")
    out = tmp_path / "out"
    code, _, err = run_cli(["interactions", str(path), "--out", str(out / "i.csv"), *args], capsys, monkeypatch)
    assert_one_error_line(code, err, fragment)
    assert files_under(out) == []
