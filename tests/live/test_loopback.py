"""A clip streamed over loopback UDP by ffmpeg into ``fomm-kp live``: the same keypoints as offline
``track`` on every frame, and the same labels as offline classification of the same windows.

ffmpeg (the binary imageio-ffmpeg ships) re-sends the clip's own H.264 bitstream (``-c copy``) at its
own rate (``-re``) as MPEG-TS to 127.0.0.1, so the decoded frames are those offline tracking reads.
The receiver has a large socket buffer and queue, so nothing should be dropped on loopback; if frames
are missing anyway, the test fails and says how many (drops are detected, never papered over).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from conftest import disc_frames, free_udp_port, random_student_onnx, send_udp, wait_udp_bound, write_video
from fomm_kp.behaviour.classifiers import save_classifier
from fomm_kp.behaviour.fitting import fit_classifier
from fomm_kp.behaviour.frame_labels import predict_windows
from fomm_kp.behaviour.segments import Segment
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.runtime import load_model, track
from fomm_kp.tracks import Tracks
from fomm_kp.video import probe


def _live_over_udp(clip: Path, model: Path, classifier: Path, events: Path, *extra: str) -> subprocess.CompletedProcess:
    """``fomm-kp live udp://...`` in its own process while ffmpeg streams ``clip`` to it; when the
    sender is done the stream stalls, and with no retries the run ends as at the end of a stream."""
    port = free_udp_port()
    command = [sys.executable, "-c", "import sys; from fomm_kp.cli import main; sys.argv[0] = 'fomm-kp'; main()",
               "live", f"udp://127.0.0.1:{port}", "-m", str(model), "--threads", "1", "--classifier", str(classifier),
               "--out", str(events), "--retries", "0", "--timeout", "2", "--open-timeout", "120", "--queue", "10000", *extra]
    receiver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert wait_udp_bound(port, timeout=120), "the receiver never listened"
        sender = send_udp(clip, port)
        assert sender.wait(120) == 0
        out, err = receiver.communicate(timeout=120)
    finally:
        if receiver.poll() is None:
            receiver.kill()
    return subprocess.CompletedProcess(command, receiver.returncode, out, err)


def _labelled_halves(tracks: Tracks, config: FeatureConfig):
    half = len(tracks.frame_indices) // 2
    name = Path(tracks.video).name
    segments = [Segment(name, 0, half - 1, "first"), Segment(name, half, len(tracks.frame_indices) - 1, "second")]
    return fit_classifier(tracks, segments, config=config)


def _check_against_offline(events_path: Path, offline: Tracks, clf) -> int:
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    end = events[-1]
    frames = [e for e in events if "scores" in e]
    received = [e["frame"] for e in frames]
    expected = offline.frame_indices.tolist()
    assert end["dropped"] == 0 and end["lost"] == 0 and received == expected, (
        f"frames were dropped on loopback: {len(received)} of {len(expected)} arrived "
        f"(dropped {end['dropped']}, lost {end['lost']}); the comparison needs every frame")
    live = np.array([[[np.nan if v is None else v for v in p] for p in e["keypoints"]] for e in frames], dtype=np.float64)
    reference = offline.keypoints[:, 0].astype(np.float64)
    np.testing.assert_array_equal(np.isnan(live), np.isnan(reference))
    assert np.nanmax(np.abs(live - reference)) <= 0.5
    windows = [e for e in events if "labels" in e]
    for window in windows:
        start, stop = window["window"]
        rows = np.nonzero((offline.frame_indices >= start) & (offline.frame_indices < stop))[0]
        if not window["labels"]:  # no subject in any frame of the window (the localiser warming up)
            assert not np.isfinite(offline.keypoints[rows]).any()
            continue
        expected_probs = predict_windows(clf, offline.select_frames(rows)).probabilities[-1]
        order = [clf.classes[i] for i in np.argsort(-expected_probs, kind="stable")]
        assert [name for name, _ in window["labels"]] == order
        got = dict((name, p) for name, p in window["labels"])
        np.testing.assert_allclose([got[c] for c in clf.classes], expected_probs, atol=1e-3)
    return sum(1 for window in windows if window["labels"])


@pytest.mark.slow  # a fresh process imports torch; the clip streams in real time (2 s)
def test_loopback_udp_stream_equals_offline(tmp_path: Path) -> None:
    frames, _ = disc_frames(num_frames=40, width=96, height=64, radius=10.0)
    clip = write_video(tmp_path / "clip.mp4", frames, fps=20.0)
    model_path = random_student_onnx(tmp_path / "student.onnx", {"localized": False})
    offline = track(clip, load_model(model_path, threads=1))
    clf = _labelled_halves(offline, FeatureConfig(window_seconds=(0.5, 1.0), stride_seconds=0.25))
    save_classifier(clf, tmp_path / "clf.npz")
    result = _live_over_udp(clip, model_path, tmp_path / "clf.npz", tmp_path / "events.jsonl",
                            "--record", str(tmp_path / "overlay.mp4"))
    assert result.returncode == 0, result.stderr
    assert _check_against_offline(tmp_path / "events.jsonl", offline, clf) == 5  # windows end at frames 19, 24, ..., 39
    assert probe(tmp_path / "overlay.mp4").num_frames == 40  # the recording is closed and playable


@pytest.mark.slow
@pytest.mark.realdata
def test_loopback_real_clip_with_localisation(tmp_path: Path, shared_data: Path) -> None:
    """Eight seconds of the open-field mouse (640x480, 30 fps), a localised model following the
    subject frame by frame against a running background; offline: ``track --localize online``."""
    source = shared_data / "dlc-openfield" / "videos" / "m3v1mp4.mp4"
    clip = tmp_path / "openfield8s.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(source), "-t", "8", "-c", "copy",
                    "-an", str(clip)], check=True)
    model_path = random_student_onnx(tmp_path / "student.onnx", {"localized": True, "box_side": 128.0, "aligned": True})
    offline = track(clip, load_model(model_path, threads=1), localize="online")
    assert np.isfinite(offline.keypoints[:, 0, 0, 0]).sum() > 60  # found once the running background is warm
    clf = _labelled_halves(offline, FeatureConfig(window_seconds=(0.5, 1.0), stride_seconds=0.5))
    save_classifier(clf, tmp_path / "clf.npz")
    result = _live_over_udp(clip, model_path, tmp_path / "clf.npz", tmp_path / "events.jsonl")
    assert result.returncode == 0, result.stderr
    assert _check_against_offline(tmp_path / "events.jsonl", offline, clf) >= 5  # windows with the subject
