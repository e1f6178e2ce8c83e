"""The live loop on files: the same keypoints as offline tracking, JSON lines, and clean endings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import random_teacher_checkpoint, synthetic_frames, write_video
from fomm_kp.errors import FommError, Interrupted
from fomm_kp.live import LiveOptions, SourceOptions, live
from fomm_kp.runtime import load_model, track
from fomm_kp.video import probe


def read_events(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    assert lines and all(line.strip() for line in lines)
    return [json.loads(line) for line in lines]  # every line is complete JSON


def frame_keypoints(events: list[dict]) -> tuple[list[int], np.ndarray]:
    rows = [e for e in events if "scores" in e]
    points = np.array([[[np.nan if v is None else v for v in p] for p in e["keypoints"]] for e in rows], dtype=np.float64)
    return [e["frame"] for e in rows], points


@pytest.fixture(scope="module")
def arena_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames, _, _, _ = synthetic_frames(70, missing=(55, 56))
    return write_video(tmp_path_factory.mktemp("arena") / "arena.mp4", frames, fps=10.0)


@pytest.fixture(scope="module")
def localised_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    meta = {"localized": True, "box_side": 48.0, "aligned": True}
    return random_teacher_checkpoint(tmp_path_factory.mktemp("model") / "localised.pt", meta)


def test_live_keypoints_equal_track_online(tmp_path: Path, arena_clip: Path, localised_model: Path) -> None:
    model = load_model(localised_model, device="cpu")
    summary = live(arena_clip, model, out=tmp_path / "events.jsonl")
    events = read_events(tmp_path / "events.jsonl")
    frames, points = frame_keypoints(events)
    offline = track(arena_clip, model, localize="online")
    assert frames == offline.frame_indices.tolist() == list(range(70))
    found = np.isfinite(points[:, 0, 0])
    np.testing.assert_array_equal(found, np.isfinite(offline.keypoints[:, 0, 0, 0]))
    assert 20 <= found.sum() < 70 and not found[55] and not found[56]  # warm-up, and frames without the subject
    np.testing.assert_allclose(points[found], offline.keypoints[found, 0], atol=1e-3)
    assert events[-1]["end"] == "end of stream" and events[-1]["frames"] == 70
    assert summary.frames == 70 and summary.dropped == summary.lost == 0
    assert len(summary.keypoint_latencies) == 70


def test_interrupted_run_leaves_complete_events_and_a_playable_recording(
        tmp_path: Path, arena_clip: Path, localised_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fomm_kp.live import session

    shown = []

    def stop_at_ten(frame: np.ndarray, points: np.ndarray) -> None:
        shown.append(frame)
        if len(shown) == 10:
            raise KeyboardInterrupt

    class FakeWindow:
        def __init__(self, *args) -> None:
            pass

        __call__ = staticmethod(stop_at_ten)

        def close(self) -> None:
            pass

    monkeypatch.setattr(session, "Window", FakeWindow)  # Ctrl-C (or the q key) while a window shows frame 10
    monkeypatch.setattr(session, "check_display", lambda: None)
    with pytest.raises(Interrupted, match="interrupted after 10 frames"):
        live(arena_clip, load_model(localised_model, device="cpu"), out=tmp_path / "ev.jsonl",
             record=tmp_path / "rec.mp4", show=True, source_options=SourceOptions(realtime=True))
    events = read_events(tmp_path / "ev.jsonl")
    assert events[-1]["end"] == "interrupted" and events[-1]["frames"] == 10
    assert probe(tmp_path / "rec.mp4").num_frames == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev.jsonl", "rec.mp4"]


def test_an_error_mid_run_still_closes_the_events(tmp_path: Path, arena_clip: Path, localised_model: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from fomm_kp.live import loop

    calls = []

    def failing(model, frames, boxes):
        calls.append(1)
        if len(calls) == 3:
            raise FommError("the detector broke")
        return original(model, frames, boxes)

    original = loop.detect_at_boxes
    monkeypatch.setattr(loop, "detect_at_boxes", failing)
    with pytest.raises(FommError, match="the detector broke"):
        live(arena_clip, localised_model, out=tmp_path / "ev.jsonl")
    events = read_events(tmp_path / "ev.jsonl")
    assert [e.get("end") for e in events] == [None, None, "error"]


def test_frame_limit_and_smoothing(tmp_path: Path, arena_clip: Path, localised_model: Path) -> None:
    summary = live(arena_clip, localised_model, out=tmp_path / "ev.jsonl", options=LiveOptions(max_frames=45, smoothing=0.5))
    events = read_events(tmp_path / "ev.jsonl")
    assert summary.reason == "frame limit" and events[-1]["end"] == "frame limit" and summary.frames == 45


def test_bad_inputs_write_nothing(tmp_path: Path, arena_clip: Path, localised_model: Path) -> None:
    with pytest.raises(FommError, match="video not found"):
        live(tmp_path / "missing.mp4", localised_model, out=tmp_path / "ev.jsonl")
    with pytest.raises(FommError, match="one of the inputs"):
        live(arena_clip, localised_model, out=localised_model)
    with pytest.raises(FommError, match="--record"):
        live(arena_clip, localised_model, out=tmp_path / "ev.jsonl", record=tmp_path / "rec.txt")
    assert list(tmp_path.iterdir()) == []
