"""Offline tracking in one decoding pass gives the tracks of the two-pass localisation, exactly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from conftest import random_student_onnx, synthetic_frames, write_video
from fomm_kp.localize.crop_rule import model_crops
from fomm_kp.runtime import load_model, track
from fomm_kp.runtime.pipeline import detect_at_boxes
from fomm_kp.tracks import Tracks
from fomm_kp.video import FrameRange, iter_frames


def _same_as_two_passes(tracks: Tracks, video: Path, model, frames: FrameRange = FrameRange()) -> None:
    """``tracks`` equal the detections at the boxes of the two-pass localisation (a background pass,
    then boxes smoothed over the whole video: :func:`model_crops`), frame by frame."""
    located = model_crops(video, model.crop, model.config.data)
    box_of = located.box_of()
    rows = list(iter_frames(video, frames.start, frames.stop, frames.stride))
    expected = detect_at_boxes(model, [frame for _, frame in rows], [box_of[index] for index, _ in rows])
    np.testing.assert_array_equal(tracks.frame_indices, [index for index, _ in rows])
    for name in ("keypoints", "scores", "jacobians", "covariances"):
        np.testing.assert_array_equal(getattr(tracks, name)[:, 0], getattr(expected, name), err_msg=name)


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("arena_track")
    frames, _, _, _ = synthetic_frames(120, missing=(3, 40, 41, 42, 43, 44, 45, 46, 90, 119))
    clip = write_video(folder / "arena.mp4", frames, fps=10.0)
    model = random_student_onnx(folder / "student.onnx", {"localized": True, "box_side": 48.0, "aligned": True})
    return clip, model


def test_one_pass_tracking_equals_the_two_pass_localisation(tmp_path: Path, arena) -> None:
    clip, model_path = arena
    model = load_model(model_path, threads=1)
    one_pass = track(clip, model, batch_size=16)
    _same_as_two_passes(one_pass, clip, model)
    with_overlay = track(clip, model, overlay=tmp_path / "overlay.mp4", batch_size=16)  # keeps every frame: two passes
    _same_as_two_passes(with_overlay, clip, model)
    found = np.isfinite(one_pass.keypoints[:, 0, 0, 0])
    assert 100 <= found.sum() < 120 and not found[[3, 40, 46, 90, 119]].any()


@pytest.mark.parametrize("frames", [FrameRange(5, 70, 3), FrameRange(0, 30), FrameRange(100)])
def test_one_pass_tracking_of_a_frame_range(tmp_path: Path, arena, frames: FrameRange) -> None:
    clip, model_path = arena
    model = load_model(model_path, threads=1)
    _same_as_two_passes(track(clip, model, frames=frames), clip, model, frames)


@pytest.mark.slow
@pytest.mark.realdata
def test_one_pass_tracking_of_real_footage(tmp_path: Path, shared_data: Path) -> None:
    """Ten seconds of the open-field mouse (640x480): the mouse rears, turns and leaves the wall."""
    clip = tmp_path / "openfield10s.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i",
                    str(shared_data / "dlc-openfield" / "videos" / "m3v1mp4.mp4"), "-t", "10", "-c", "copy", "-an",
                    str(clip)], check=True)
    model_path = random_student_onnx(tmp_path / "student.onnx", {"localized": True, "box_side": 128.0, "aligned": True})
    model = load_model(model_path, threads=1)
    _same_as_two_passes(track(clip, model), clip, model)
