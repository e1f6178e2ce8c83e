"""The two halves of ``fomm-kp demo`` after training: animation and behaviour (the whole demo runs
in tests/cli/test_cli_train_track.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fomm_kp.demo import animation_demo, behaviour_demo
from fomm_kp.errors import FommError
from fomm_kp.video import probe

from conftest import behaviour_tracks, moving_square_video


def test_animation_demo_writes_side_by_side_video(tiny_model, tmp_path):
    video = tmp_path / "clip.mp4"
    moving_square_video(video, 40, 30, 12)
    written = animation_demo(tiny_model, video, tmp_path / "demo", max_frames=4)
    info = probe(written["animation"])
    assert info.num_frames == 4  # frames 6..9: the second half, capped
    assert info.height == 128 and info.width > 2 * 128  # three panels side by side


def test_behaviour_demo(tmp_path: Path) -> None:
    tracks = behaviour_tracks(["circling", "oscillating", "circling", "oscillating", "circling"], seed=3, name="/x/sample.mp4")
    labels = tmp_path / "labels.csv"
    labels.write_text("video,start_frame,end_frame,label\nsample,0,89,circling\nsample,90,179,oscillating\n")
    written = behaviour_demo(tracks, labels, tmp_path / "demo")
    for key in ("features", "spectrogram", "classifier", "report_csv", "report_json", "time_budget", "ethogram_sample"):
        assert written[key].is_file(), key
    report = json.loads(written["report_json"].read_text())
    assert report["videos"]["sample"]["behaviours"]["circling"]["bouts"] == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("video,start_frame,end_frame,label\nother,0,10,a\n")
    with pytest.raises(FommError, match="no segment for video"):
        behaviour_demo(tracks, bad, tmp_path / "demo2")
