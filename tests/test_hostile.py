"""Hostile input: files that try to run code, outputs that would destroy inputs, Ctrl-C.

Every refusal is one ``error:`` line and a non-zero exit; no input changes; no code runs.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from fomm_kp.errors import FommError
from fomm_kp.tracks import Tracks, save_tracks
from fomm_kp.tracks.dlc_h5 import literal_pickle, read_dlc_h5

from conftest import SyntheticClip, assert_one_error_line, files_under, run_cli


class _Payload:
    """Unpickling this writes the marker file named in ``MARKER`` (the test's proof of execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dlc_frame(parts=("nose", "tail"), rows: int = 4):
    pd = pytest.importorskip("pandas")
    columns = pd.MultiIndex.from_product([["me"], list(parts), ["x", "y", "likelihood"]],
                                         names=["scorer", "bodyparts", "coords"])
    return pd.DataFrame(np.random.default_rng(0).random((rows, len(columns))) * 50, columns=columns)


@pytest.fixture
def evil_object_column(tmp_path: Path) -> tuple[Path, Path]:
    """A DeepLabCut .h5 (pandas fixed layout) whose table holds an object column: a pickle."""
    pytest.importorskip("tables")
    marker = tmp_path / "marker_object"
    frame = _dlc_frame()
    frame[("me", "tail", "y")] = np.array([_Payload(marker), 1.0, 2.0, 3.0], dtype=object)
    path = tmp_path / "evil_object.h5"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTables warns that it pickles the object column
        frame.to_hdf(path, key="df_with_missing", mode="w")
    return path, marker


@pytest.fixture
def evil_attribute(tmp_path: Path) -> tuple[Path, Path]:
    """A DeepLabCut .h5 (pandas table layout) whose column-name metadata is a code-running pickle."""
    pytest.importorskip("tables")
    marker = tmp_path / "marker_attribute"
    path = tmp_path / "evil_attribute.h5"
    _dlc_frame().to_hdf(path, key="df_with_missing", format="table", mode="w")
    with h5py.File(path, "r+") as handle:
        handle["df_with_missing"].attrs["non_index_axes"] = np.bytes_(pickle.dumps(_Payload(marker), protocol=0))
        handle["df_with_missing"].attrs["info"] = np.bytes_(pickle.dumps(_Payload(marker), protocol=2))
    return path, marker


def test_the_object_column_file_really_is_hostile(evil_object_column) -> None:
    """pandas' own reader runs the payload: the fixture is a real attack, so the refusals below mean something."""
    import pandas as pd

    path, marker = evil_object_column
    try:
        pd.read_hdf(path)
    except Exception:
        pass
    assert marker.exists()


@pytest.mark.parametrize("fixture", ["evil_object_column", "evil_attribute"])
def test_hostile_h5_is_refused_by_every_reader(fixture: str, request, tmp_path: Path, capsys, monkeypatch) -> None:
    from fomm_kp.evaluation.labels import read_dlc_labels
    from fomm_kp.tracks import load_tracks

    path, marker = request.getfixturevalue(fixture)
    with pytest.raises(FommError, match="refus"):
        read_dlc_h5(path)
    with pytest.raises(FommError):
        load_tracks(path)
    with pytest.raises(FommError):
        read_dlc_labels(path)
    for args in (["features", str(path), "-o", str(tmp_path / "f.npz")],
                 ["fit", "--clip", f"a={path}", "--clip", f"b={path}", "-o", str(tmp_path / "c.npz")],
                 ["motifs", str(path), "-o", str(tmp_path / "motifs")],
                 ["evaluate", "keypoints", str(path), "--no-untrained"]):
        code, _, err = run_cli(args, capsys, monkeypatch)
        assert code != 0 and err.strip().startswith("error: ") and len(err.strip().splitlines()) == 1, (args, err)
    assert not marker.exists()
    assert not (tmp_path / "f.npz").exists() and not (tmp_path / "c.npz").exists()


def test_safe_reader_matches_pandas_on_both_layouts(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    frame = _dlc_frame(rows=6)
    frame.index = pd.MultiIndex.from_tuples([("labeled-data", "v", f"img{i:03d}.png") for i in range(6)])
    frame.to_hdf(tmp_path / "fixed.h5", key="df_with_missing", mode="w")
    flat = _dlc_frame(rows=6)
    flat.to_hdf(tmp_path / "table.h5", key="df_with_missing", format="table", mode="w")
    for path, expected in ((tmp_path / "fixed.h5", frame), (tmp_path / "table.h5", flat)):
        table = read_dlc_h5(path)
        np.testing.assert_array_equal(table.values, expected.to_numpy(np.float64))
        assert table.columns == [tuple(c) for c in expected.columns]
        assert table.column_names == ["scorer", "bodyparts", "coords"]
        assert table.index == list(expected.index)


def test_literal_pickle_reads_data_and_refuses_code() -> None:
    data = {"names": ["scorer", "bodyparts"], 1: (2.5, None, True), "n": [-(2**70), 3]}
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        assert literal_pickle(pickle.dumps(data, protocol=protocol)) == data
    for protocol in (0, 2, 5):
        with pytest.raises(ValueError, match="not plain data"):
            literal_pickle(pickle.dumps(_Payload(Path("never")), protocol=protocol))
    with pytest.raises(ValueError, match="not plain data"):
        literal_pickle(pickle.dumps(Path("x"), protocol=0))


# --------------------------------------------------------------------------------------------
# Outputs that name an input.


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, disc_clip: SyntheticClip) -> Path:
    from fomm_kp import api
    from fomm_kp.config import builtin_config

    folder = tmp_path_factory.mktemp("hostile_model")
    api.train(disc_clip.path, folder, config=builtin_config("tiny"), steps=1, device="cpu")
    return folder / "checkpoint.pt"


@pytest.fixture
def small_tracks(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    t = 60
    tracks = Tracks(keypoints=rng.random((t, 1, 3, 2), dtype=np.float32) * 50, scores=np.ones((t, 1, 3), np.float32),
                    frame_indices=np.arange(t), fps=10.0)
    return save_tracks(tracks, tmp_path / "tracks.npz"), save_tracks(tracks, tmp_path / "tracks.csv")


def test_outputs_that_name_an_input_are_refused(tmp_path: Path, disc_clip: SyntheticClip, trained: Path,
                                                small_tracks, capsys, monkeypatch) -> None:
    video = tmp_path / "video.mp4"
    video.write_bytes(disc_clip.path.read_bytes())
    teacher = tmp_path / "teacher.pt"
    teacher.write_bytes(trained.read_bytes())
    npz, csv_file = small_tracks
    link = tmp_path / "link.mp4"
    link.symlink_to(video)
    hard = tmp_path / "hard.npz"
    os.link(npz, hard)
    before = {p: _digest(p) for p in (video, teacher, npz, csv_file)}
    cases = [
        ["track", str(video), "-m", str(teacher), "-o", str(tmp_path / "t.npz"), "--overlay", str(video)],
        ["track", str(video), "-m", str(teacher), "-o", str(tmp_path / "t.npz"), "--overlay", str(link)],
        ["track", str(video), "-m", str(teacher), "-o", str(tmp_path / "t.npz"), "--csv", str(tmp_path / "t.npz")],
        ["animate", str(video), str(video), "-m", str(teacher), "-o", str(video)],
        ["distill", str(video), "-t", str(teacher), "-o", str(teacher)],
        ["export", str(teacher), "--onnx", str(teacher)],
        ["export", str(teacher), "--onnx", str(tmp_path / "model.onnx.pt")],
        ["features", str(npz), "-o", str(npz)],
        ["features", str(npz), "-o", str(hard)],
        ["fit", "--clip", f"a={npz}", "--clip", f"b={csv_file}", "-o", str(npz)],
        ["classify", str(csv_file), "--classifier", str(tmp_path / "c.npz"), "--per-frame", str(csv_file)],
        ["score", str(tmp_path), "-o", str(tmp_path)],
    ]
    for args in cases:
        code, _, err = run_cli(args, capsys, monkeypatch)
        assert_one_error_line(code, err)
    assert {p: _digest(p) for p in before} == before
    assert sorted(files_under(tmp_path)) == sorted(["video.mp4", "teacher.pt", "tracks.npz", "tracks.csv",
                                                    "link.mp4", "hard.npz"])


def test_train_never_replaces_a_trained_checkpoint_silently(tmp_path: Path, disc_clip: SyntheticClip,
                                                            trained: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(trained.read_bytes())
    before = _digest(out / "checkpoint.pt")
    code, _, err = run_cli(["train", str(disc_clip.path), "--out", str(out), "--config", "tiny", "--steps", "1"],
                           capsys, monkeypatch)
    assert_one_error_line(code, err, "--resume", "--overwrite")
    assert _digest(out / "checkpoint.pt") == before
    code, _, err = run_cli(["train", str(disc_clip.path), "--out", str(out), "--config", "tiny", "--steps", "1",
                            "--overwrite"], capsys, monkeypatch)
    assert code == 0, err
    assert _digest(out / "checkpoint.pt") != before


# --------------------------------------------------------------------------------------------
# Ctrl-C.


@pytest.mark.slow
def test_ctrl_c_during_training_saves_a_checkpoint_and_exits_130(tmp_path: Path, disc_clip: SyntheticClip) -> None:
    import yaml

    from fomm_kp.checkpoint import read_checkpoint
    from fomm_kp.config import builtin_config, to_dict

    out = tmp_path / "run"
    # The built-in tiny config, with no periodic checkpoint: the only one is written at the interrupt.
    merged = to_dict(builtin_config("tiny"))
    merged["train"].update(checkpoint_every=100000, preview_every=0, log_every=1)
    config = tmp_path / "tiny_no_checkpoints.yaml"
    config.write_text(yaml.safe_dump(merged))
    command = [sys.executable, "-c", "import sys; from fomm_kp.cli import main; sys.argv[0] = 'fomm-kp'; main()",
               "train", str(disc_clip.path), "--out", str(out), "--config", str(config), "--steps", "100000"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        if "fomm_kp.training.loop: step 3 " in line:
            break
    else:
        process.kill()
        pytest.fail("training did not start: " + "".join(lines))
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, rest
    message = [line for line in rest.splitlines() if line.startswith("error: ")]
    assert len(message) == 1 and "--resume" in message[0], rest
    _, _, step, _ = read_checkpoint(out / "checkpoint.pt")
    assert step >= 3 and f"step {step};" in message[0]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    resumed = subprocess.run(command[:3] + ["train", str(disc_clip.path), "--out", str(out), "--resume",
                                            "--steps", str(step + 2)], capture_output=True, text=True, env=env, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert read_checkpoint(out / "checkpoint.pt")[2] == step + 2
