"""FIFOs, sockets and devices given as inputs are refused at once (a reader would block forever or
never reach the end), with one ``error:`` line."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import assert_refused

COMMANDS = {
    "train-video": ["train", "{S}", "-o", "{out}/run", "--config", "tiny"],
    "train-config": ["train", "{video}", "-o", "{out}/run", "--config", "{S}"],
    "track-video": ["track", "{S}", "-m", "{ckpt}", "-o", "{out}/t.npz"],
    "track-checkpoint": ["track", "{video}", "-m", "{S}", "-o", "{out}/t.npz"],
    "distill-teacher": ["distill", "{video}", "-t", "{S}", "-o", "{out}/s.pt"],
    "export-checkpoint": ["export", "{S}", "--onnx", "{out}/m.onnx"],
    "animate-driving": ["animate", "{video}", "{S}", "-m", "{ckpt}", "-o", "{out}/a.mp4"],
    "features-tracks": ["features", "{S}", "-o", "{out}/f.npz"],
    "fit-labels": ["fit", "{npz}", "--labels", "{S}", "-o", "{out}/c.npz"],
    "classify-classifier": ["classify", "{npz}", "--classifier", "{S}"],
    "score-groups": ["score", "{npz}", "--classifier", "{clf}", "--groups", "{S}", "-o", "{out}/r"],
    "motifs-tracks": ["motifs", "{S}", "-o", "{out}/m"],
    "keypoints-labels": ["evaluate", "keypoints", "{S}", "--tracks", "{npz}"],
    "behaviour-table": ["evaluate", "behaviour", "{S}", "-o", "{out}/e"],
    "reconstruction-video": ["evaluate", "reconstruction", "{S}", "-m", "{ckpt}"],
}
SUFFIX = {"train-video": ".mp4", "track-video": ".mp4", "animate-driving": ".mp4", "reconstruction-video": ".mp4",
          "train-config": ".yaml", "features-tracks": ".npz", "motifs-tracks": ".npz", "fit-labels": ".csv",
          "classify-classifier": ".npz", "score-groups": ".csv", "keypoints-labels": ".csv", "behaviour-table": ".csv"}


def _unblock_later(path: Path, after: float = 20.0) -> None:
    """If a reader blocks on the FIFO anyway, open it for writing after a while so the test ends (and fails)."""
    def open_it() -> None:
        time.sleep(after)
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass

    threading.Thread(target=open_it, daemon=True).start()


@pytest.mark.parametrize("kind", ["fifo", "socket"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_special_file_is_refused_at_once(command: str, kind: str, hostile_world, tmp_path: Path, capsys,
                                         monkeypatch) -> None:
    short = Path(tempfile.mkdtemp(prefix="fk"))  # unix socket paths must be short
    special = short / f"s{SUFFIX.get(command, '.pt')}"
    holder = None
    if kind == "fifo":
        os.mkfifo(special)
        _unblock_later(special)
    else:
        holder = socket.socket(socket.AF_UNIX)
        holder.bind(str(special))
    try:
        started = time.monotonic()
        args = [a.replace("{S}", str(special)) for a in COMMANDS[command]]
        assert_refused(hostile_world, args, tmp_path / "out", capsys, monkeypatch, kind.upper() if kind == "fifo" else kind)
        assert time.monotonic() - started < 10
    finally:
        if holder is not None:
            holder.close()
        special.unlink()
        short.rmdir()


@pytest.mark.parametrize("command", ["train-video", "track-video", "reconstruction-video", "animate-driving"])
def test_device_as_video_is_refused(command: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    args = [a.replace("{S}", "/dev/zero") for a in COMMANDS[command]]
    assert_refused(hostile_world, args, tmp_path / "out", capsys, monkeypatch, "device")
