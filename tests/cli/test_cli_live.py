"""``fomm-kp live``: events on stdout or in a file, a recording, Ctrl-C, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_one_error_line, files_under, random_teacher_checkpoint, run_cli
from fomm_kp.video import probe


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_teacher_checkpoint(tmp_path_factory.mktemp("live_model") / "whole.pt", {"localized": False})


def test_live_on_a_file_writes_events_and_a_recording(tmp_path: Path, disc_clip, model: Path, capsys, monkeypatch) -> None:
    code, out, err = run_cli(["live", str(disc_clip.path), "-m", str(model), "--device", "cpu", "--out",
                              str(tmp_path / "ev.jsonl"), "--record", str(tmp_path / "rec.mp4")], capsys, monkeypatch)
    assert code == 0, err
    assert out == ""
    events = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert [e["frame"] for e in events if "scores" in e] == list(range(24))
    assert events[-1]["end"] == "end of stream"
    assert probe(tmp_path / "rec.mp4").num_frames == 24
    assert "end of stream: 24 frames" in err


def test_live_writes_events_to_stdout_by_default(disc_clip, model: Path, capsys, monkeypatch) -> None:
    code, out, err = run_cli(["live", str(disc_clip.path), "-m", str(model), "--device", "cpu", "--max-frames", "5"],
                             capsys, monkeypatch)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == 6 and events[-1]["end"] == "frame limit"


def test_ctrl_c_exits_130_with_complete_outputs(tmp_path: Path, disc_clip, model: Path, capsys, monkeypatch) -> None:
    from fomm_kp.live import loop

    original, calls = loop.detect_at_boxes, []

    def interrupted_at_four(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(loop, "detect_at_boxes", interrupted_at_four)
    code, _, err = run_cli(["live", str(disc_clip.path), "-m", str(model), "--device", "cpu", "--out",
                            str(tmp_path / "ev.jsonl"), "--record", str(tmp_path / "rec.mp4"), "--realtime"],
                           capsys, monkeypatch)
    assert code == 130
    assert err.strip().splitlines()[-1].startswith("error: interrupted after 3 frames")
    events = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert events[-1]["end"] == "interrupted" and len(events) == 4
    assert probe(tmp_path / "rec.mp4").num_frames == 3


@pytest.mark.parametrize("args, fragment", [
    (["missing.mp4"], "video not found"),
    (["{clip}", "--record", "{tmp}/rec.txt"], "--record"),
    (["{clip}", "--out", "{model}"], "one of the inputs"),
    (["gopher://old"], "unsupported stream"),
    (["{clip}", "--smooth-weight", "0"], "--smooth-weight"),
    (["{clip}", "--show"], "--show"),
])
def test_bad_inputs_give_one_error_line(tmp_path: Path, disc_clip, model: Path, args, fragment, capsys, monkeypatch) -> None:
    if "--show" in args:
        from fomm_kp.errors import FommError
        from fomm_kp.live.display import check_display

        try:
            check_display()
        except FommError:
            pass
        else:
            pytest.skip("this machine can open windows")
    args = [a.format(clip=disc_clip.path, tmp=tmp_path, model=model) for a in args]
    code, out, err = run_cli(["live", args[0], "-m", str(model), "--device", "cpu", *args[1:]], capsys, monkeypatch)
    assert_one_error_line(code, err, fragment)
    assert out == "" and files_under(tmp_path) == []
