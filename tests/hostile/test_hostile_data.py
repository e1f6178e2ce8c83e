"""Inputs that used to give silently wrong outputs: 16-bit images, variable-frame-rate video, crops
outside the frame, tracks that are mostly or wholly missing, empty and built-in configs."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_error_line, behaviour_tracks, run_cli
from fomm_kp.errors import FommError
from fomm_kp.tracks import Tracks, load_tracks, save_tracks
from fomm_kp.video import iter_frames, probe, read_image


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_images_are_scaled_not_clipped(tmp_path: Path, suffix: str) -> None:
    from PIL import Image

    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))  # dark to bright, left to right
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(ramp).save(folder / f"f{i}{suffix}")
    image = read_image(folder / f"f0{suffix}")
    assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
    row = image[0, :, 0].astype(int)
    assert len(np.unique(row)) > 50  # clipped to 0..255 it would be 0 then 255 from the second column
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row) >= 0).all()
    assert abs(row[32] - 255 * 32 / 63) <= 1
    frames = [frame for _, frame in iter_frames(folder)]
    assert len(frames) == 3 and np.array_equal(frames[1], image)
    assert probe(folder).num_frames == 3


def write_vfr_video(path: Path, times: np.ndarray, width: int = 64, height: int = 48) -> Path:
    """An H.264 mp4 whose frame ``i`` is shown at ``times[i]`` seconds (a variable frame rate)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            image = np.full((height, width, 3), 40, np.uint8)
            image[10:22, (2 * i) % (width - 12):(2 * i) % (width - 12) + 12] = 220
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


VFR_TIMES = np.concatenate([np.arange(20) * 0.1, 2.0 + np.arange(1, 31) * 0.02])  # 10 fps, then 50 fps


def test_variable_frame_rate_video_is_timed_by_its_timestamps(tmp_path: Path, trained_checkpoint: Path, capsys,
                                                              monkeypatch) -> None:
    video = write_vfr_video(tmp_path / "vfr.mp4", VFR_TIMES)
    info = probe(video)
    assert info.num_frames == 50 and info.variable_rate
    np.testing.assert_allclose(info.times, VFR_TIMES, atol=1e-3)
    out = tmp_path / "t.npz"
    code, _, err = run_cli(["track", str(video), "-m", str(trained_checkpoint), "-o", str(out)], capsys, monkeypatch)
    assert code == 0, err
    tracks = load_tracks(out)
    np.testing.assert_allclose(tracks.times, VFR_TIMES, atol=1e-3)  # frame 40 at 2.42 s, not 40 / average fps
    assert abs(40 / tracks.fps - tracks.times[40]) > 0.15 and tracks.variable_rate
    np.testing.assert_array_equal(tracks.select_frames(slice(10, 20)).times, tracks.times[10:20])
    code, _, err = run_cli(["features", str(out), "-o", str(tmp_path / "f.npz")], capsys, monkeypatch)
    assert_one_error_line(code, err, "variable-frame-rate", "cfr")
    assert not (tmp_path / "f.npz").exists()


def test_constant_rate_video_is_not_variable(disc_clip) -> None:
    info = probe(disc_clip.path)
    assert not info.variable_rate
    np.testing.assert_allclose(info.times, np.arange(info.num_frames) / info.fps, atol=1e-3)


def test_tracks_times_round_trip_and_are_checked(tmp_path: Path) -> None:
    tracks = behaviour_tracks(["circling"], seed=0)
    timed = Tracks(tracks.keypoints, tracks.scores, tracks.frame_indices, tracks.fps, times=tracks.frame_indices / 7.0)
    np.testing.assert_array_equal(load_tracks(save_tracks(timed, tmp_path / "t.npz")).times, timed.times)
    assert load_tracks(save_tracks(tracks, tmp_path / "u.npz")).times is None
    for bad in (np.zeros(3), np.full(tracks.num_frames, np.nan), -np.arange(tracks.num_frames, dtype=float)):
        with pytest.raises(FommError, match="times"):
            Tracks(tracks.keypoints, tracks.scores, tracks.frame_indices, tracks.fps, times=bad)


def test_crop_wholly_outside_the_frame_is_refused_by_the_api(disc_clip, trained_checkpoint: Path, tmp_path: Path) -> None:
    from fomm_kp import api

    with pytest.raises(FommError, match="outside"):
        api.track(disc_clip.path, api.load_model(trained_checkpoint, device="cpu"), crop=(100, 100, 164, 148))
    with pytest.raises(FommError, match="outside"):
        api.train(disc_clip.path, tmp_path / "run", config="tiny", steps=1, crop=(-80, 0, -10, 40), device="cpu")
    assert not (tmp_path / "run").exists()
    partly = api.track(disc_clip.path, api.load_model(trained_checkpoint, device="cpu"), crop=(-10, -10, 40, 30))
    assert partly.num_frames == disc_clip.frames.shape[0]


def test_mostly_missing_tracks_warn_and_leave_empty_windows_unlabelled(hostile_world, caplog) -> None:
    from fomm_kp.behaviour.classifiers import load_classifier
    from fomm_kp.behaviour.frame_labels import classify

    tracks = load_tracks(hostile_world.folder / "tracks.npz")
    keypoints = tracks.keypoints.copy()
    keypoints[:120] = np.nan  # 2/3 of the clip missing
    gappy = Tracks(keypoints, tracks.scores, tracks.frame_indices, tracks.fps, video="gappy.mp4",
                   keypoint_names=tracks.keypoint_names)
    with caplog.at_level(logging.WARNING):
        result = classify(gappy, load_classifier(hostile_world.folder / "classifier.npz"))
    assert any("missing" in r.message for r in caplog.records if r.levelno == logging.WARNING)
    early = result.frame_indices < 55  # every window (0.5 or 2 s) covering these lies in the missing part
    assert (result.labels[early] == -1).all()  # no window there has data: unknown, not a guess
    assert (result.labels[result.frame_indices >= 130] >= 0).all()


def test_all_missing_tracks_are_refused_by_fit_and_classify(hostile_world) -> None:
    from fomm_kp.behaviour.classifiers import load_classifier
    from fomm_kp.behaviour.fitting import fit_from_clips
    from fomm_kp.behaviour.frame_labels import classify

    tracks = load_tracks(hostile_world.folder / "tracks.npz")
    empty = Tracks(np.full_like(tracks.keypoints, np.nan), np.zeros_like(tracks.scores), tracks.frame_indices,
                   tracks.fps, keypoint_names=tracks.keypoint_names)
    with pytest.raises(FommError, match="missing"):
        classify(empty, load_classifier(hostile_world.folder / "classifier.npz"))
    with pytest.raises(FommError, match="missing"):
        fit_from_clips([("a", empty), ("b", tracks)])


def test_empty_config_file_is_the_default_config(tmp_path: Path) -> None:
    from fomm_kp.config import Config, load_config

    for text in ("", "# nothing\n", "---\n"):
        path = tmp_path / "empty.yaml"
        path.write_text(text)
        assert load_config(path) == load_config(None) == Config()
