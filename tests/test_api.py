"""train → track through the Python API on a synthetic clip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import fomm_kp
from fomm_kp import api
from fomm_kp.config import builtin_config
from fomm_kp.errors import FommError
from fomm_kp.runtime import Model
from fomm_kp.tracks import Tracks, load_tracks
from fomm_kp.video import FrameRange, crop_frame, probe, read_frames

from conftest import SyntheticClip, tiny_whole_frame, write_video


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, disc_clip: SyntheticClip) -> Model:
    out = tmp_path_factory.mktemp("run")
    return fomm_kp.train(disc_clip.path, out, config=tiny_whole_frame(), steps=3, device="cpu")


def _inside(points: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> bool:
    """All points within the box's pixel area (pixel centres at integers, edges at ±0.5)."""
    x, y = points[..., 0], points[..., 1]
    return bool(np.all((x >= x0 - 0.5) & (x <= x1 - 0.5) & (y >= y0 - 0.5) & (y <= y1 - 0.5)))


def test_train_returns_a_model(trained: Model) -> None:
    assert trained.step == 3
    assert trained.num_keypoints == 4 and trained.detector_size == 32
    assert trained.crop.localized is False and trained.crop.fixed_crop is None
    assert trained.config.data.any_orientation == "off"  # 'auto' resolved: a whole-frame subject
    assert trained.config.data.foreground == "on"  # 'auto' resolved: the one moving disc is the foreground
    assert trained.meta["num_training_frames"] == 24
    assert not trained.network.training
    assert Path(trained.meta["video"]).name == "disc.mp4"


def test_track_whole_video(trained: Model, disc_clip: SyntheticClip, tmp_path: Path) -> None:
    tracks = fomm_kp.track(disc_clip.path, trained, out=tmp_path / "t.npz", overlay=tmp_path / "o.mp4")
    assert isinstance(tracks, Tracks)
    assert tracks.keypoints.shape == (24, 1, 4, 2)
    assert tracks.scores.shape == (24, 1, 4)
    assert tracks.jacobians.shape == tracks.covariances.shape == (24, 1, 4, 2, 2)
    np.testing.assert_array_equal(tracks.frame_indices, np.arange(24))
    assert tracks.fps == pytest.approx(10.0) and tracks.video == str(disc_clip.path)
    assert np.isfinite(tracks.keypoints).all()
    assert _inside(tracks.keypoints, 0, 0, 64, 48)  # original-frame pixels, not detector pixels
    assert (tracks.scores >= 0).all() and (tracks.scores <= 1).all()
    # Covariances in pixels² are symmetric positive semi-definite.
    assert np.allclose(tracks.covariances, np.swapaxes(tracks.covariances, -1, -2), atol=1e-3)
    assert (np.linalg.eigvalsh(tracks.covariances.astype(np.float64)) > -1e-3).all()
    saved = load_tracks(tmp_path / "t.npz")
    np.testing.assert_array_equal(saved.keypoints, tracks.keypoints)
    info = probe(tmp_path / "o.mp4")
    assert info.num_frames == 24
    assert info.width % 64 == 0 and info.width // 64 == info.height // 48  # small videos may be enlarged


def test_track_matches_detecting_each_frame(trained: Model, disc_clip: SyntheticClip) -> None:
    """Streaming in batches gives what the detector gives on the frames one by one, in original pixels."""
    tracks = fomm_kp.track(disc_clip.path, trained, batch_size=5)
    _, frames = read_frames(disc_clip.path)
    for i in (0, 7, 23):
        det = trained.detect(frames[i])
        np.testing.assert_allclose(tracks.keypoints[i, 0], det.keypoints[0], atol=1e-4)
        np.testing.assert_allclose(tracks.scores[i, 0], det.scores[0], atol=1e-5)


def test_detector_size_is_mapped_back_to_frame_pixels(trained: Model) -> None:
    """A keypoint at normalised (u, v) of the detector input lands at the same relative place in the frame."""
    frames = np.zeros((1, 48, 64, 3), dtype=np.uint8)
    det = trained.detect(frames)
    with torch.no_grad():
        images = torch.from_numpy(np.zeros((1, 3, 32, 32), dtype=np.float32))
        normalised = trained.network.detector(images).keypoints[0].numpy()
    expected = np.stack([(normalised[:, 0] + 1) * 64 / 2 - 0.5, (normalised[:, 1] + 1) * 48 / 2 - 0.5], axis=-1)
    np.testing.assert_allclose(det.keypoints[0], expected, atol=1e-3)


def test_track_with_stride_start_stop(trained: Model, disc_clip: SyntheticClip) -> None:
    full = fomm_kp.track(disc_clip.path, trained)
    part = fomm_kp.track(disc_clip.path, trained, frames=FrameRange(2, 20, 5))
    np.testing.assert_array_equal(part.frame_indices, [2, 7, 12, 17])
    np.testing.assert_allclose(part.keypoints, full.keypoints[[2, 7, 12, 17]], atol=1e-4)
    tail = fomm_kp.track(disc_clip.path, trained, frames=FrameRange(20, 1000))
    np.testing.assert_array_equal(tail.frame_indices, [20, 21, 22, 23])


def test_track_with_a_fixed_crop(trained: Model, disc_clip: SyntheticClip) -> None:
    box = (8.0, 4.0, 40.0, 36.0)
    tracks = fomm_kp.track(disc_clip.path, trained, crop=box)
    assert tracks.keypoints.shape == (24, 1, 4, 2)
    assert _inside(tracks.keypoints, *box)
    # Same as detecting in the crops by hand and shifting by the box corner.
    _, frames = read_frames(disc_clip.path, stop=3)
    crops = np.stack([crop_frame(f, box) for f in frames])
    det = trained.detect(crops)
    np.testing.assert_allclose(tracks.keypoints[:3, 0], det.keypoints + np.array([8.0, 4.0]), atol=1e-3)
    # A crop that is the whole frame changes nothing.
    whole = fomm_kp.track(disc_clip.path, trained, crop=(0, 0, 64, 48), frames=FrameRange(stop=4))
    plain = fomm_kp.track(disc_clip.path, trained, frames=FrameRange(stop=4))
    np.testing.assert_allclose(whole.keypoints, plain.keypoints, atol=1e-4)


def test_crop_partly_outside_the_frame(trained: Model, disc_clip: SyntheticClip) -> None:
    box = (40.0, 20.0, 80.0, 60.0)
    tracks = fomm_kp.track(disc_clip.path, trained, crop=box, frames=FrameRange(stop=3))
    assert np.isfinite(tracks.keypoints).all()
    assert _inside(tracks.keypoints, *box)


def test_model_trained_on_a_crop_tracks_in_that_crop(tmp_path: Path, disc_clip: SyntheticClip) -> None:
    box = [16.0, 8.0, 48.0, 40.0]
    model = api.train(disc_clip.path, tmp_path, config=tiny_whole_frame(), steps=1, crop=box, device="cpu")
    assert model.crop.fixed_crop == tuple(box) and model.crop.box_side == pytest.approx(32.0)
    reloaded = api.load_model(tmp_path / "checkpoint.pt", device="cpu")
    assert reloaded.crop == model.crop
    tracks = api.track(disc_clip.path, reloaded, frames=FrameRange(stop=5))  # the training crop is the default
    assert _inside(tracks.keypoints, *box)


def test_track_from_a_checkpoint_path(trained: Model, disc_clip: SyntheticClip, tmp_path: Path) -> None:
    out = tmp_path / "run"
    fomm_kp.train(disc_clip.path, out, config=tiny_whole_frame(), steps=1, device="cpu")
    tracks = fomm_kp.track(disc_clip.path, out / "checkpoint.pt", frames=FrameRange(stop=2))
    assert tracks.keypoints.shape == (2, 1, 4, 2)


def test_track_errors(trained: Model, disc_clip: SyntheticClip, tmp_path: Path) -> None:
    with pytest.raises(FommError, match="no frames to track"):
        fomm_kp.track(disc_clip.path, trained, frames=FrameRange(start=30))
    with pytest.raises(FommError, match="crop must be"):
        fomm_kp.track(disc_clip.path, trained, crop=(10, 10, 5, 20))
    with pytest.raises(FommError, match="checkpoint not found"):
        fomm_kp.track(disc_clip.path, tmp_path / "missing.pt")
    with pytest.raises(FommError, match="video not found"):
        fomm_kp.track(tmp_path / "missing.mp4", trained)
    text = tmp_path / "text.mp4"
    text.write_text("hello")
    with pytest.raises(FommError, match="cannot read video"):
        fomm_kp.track(text, trained, out=tmp_path / "t.npz", overlay=tmp_path / "o.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.mp4"]


def test_train_errors(disc_clip: SyntheticClip, tmp_path: Path) -> None:
    text = tmp_path / "text.mp4"
    text.write_text("hello")
    with pytest.raises(FommError, match="cannot read video"):
        fomm_kp.train(text, tmp_path / "out", config=tiny_whole_frame(), steps=1)
    with pytest.raises(FommError, match="video not found"):
        fomm_kp.train(tmp_path / "missing.mp4", tmp_path / "out", config=tiny_whole_frame(), steps=1)
    with pytest.raises(FommError, match="unknown built-in config|config file not found"):
        fomm_kp.train(disc_clip.path, tmp_path / "out", config="nonexistent.yaml", steps=1)
    assert not (tmp_path / "out").exists()


def test_the_foreground_prior_stays_off_when_no_single_subject_stands_out(tmp_path: Path) -> None:
    """data.foreground auto: two equal squares moving apart share the change, so neither is 'the'
    foreground (as the moving parts of a talking face are not the face): the prior resolves off."""
    frames = np.full((48, 64, 64, 3), 40, dtype=np.uint8)
    for t in range(48):
        x = 4 + t % 24
        frames[t, 8:18, x:x + 10] = (220, 180, 60)
        frames[t, 44:54, 50 - x:60 - x] = (60, 180, 220)
    video = write_video(tmp_path / "two.mp4", frames)
    model = api.train(video, tmp_path / "run", config=tiny_whole_frame(), steps=1, device="cpu")
    assert model.config.data.foreground == "off"
    losses = api.load_model(tmp_path / "run" / "checkpoint.pt").meta["losses"]
    assert "foreground" not in losses and "on_subject" in losses


def test_localized_training_and_tracking_follow_the_subject(tmp_path: Path, disc_clip: SyntheticClip) -> None:
    """With localisation on, crops follow the disc and keypoints come back in frame pixels near it."""
    pytest.importorskip("fomm_kp.localize")
    config = builtin_config("tiny")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, localize="on"),
                                 loss=dataclasses.replace(config.loss, rotation_equivariance=1.0))
    model = api.train(disc_clip.path, tmp_path, config=config, steps=1, device="cpu")
    assert model.crop.localized is True
    assert model.config.data.any_orientation == "on"  # 'auto' resolved: a localised subject may face any way
    assert model.crop.aligned is False  # align 'auto': a round disc has no heading to turn to
    assert "rotation_equivariance" in api.load_model(tmp_path / "checkpoint.pt").meta["losses"]
    side = model.crop.box_side
    assert 16 <= side <= 48
    tracks = api.track(disc_clip.path, model)
    found = np.isfinite(tracks.keypoints).all(axis=(1, 2, 3))
    assert found.mean() > 0.9
    distance = np.abs(tracks.keypoints[found, 0] - disc_clip.centres[found][:, None, :]).max(axis=-1)
    assert distance.max() <= side / 2 + 3  # inside the box around the disc (plus smoothing slack)
    assert (tracks.scores[~found] == 0).all()


def test_crops_turned_to_the_heading_train_and_track(tmp_path: Path, disc_clip: SyntheticClip) -> None:
    """align on: crops turn with the subject's heading, quarter turns resolve off, and tracked
    keypoints come back in frame pixels near the subject."""
    config = builtin_config("tiny")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, localize="on", align="on"))
    model = api.train(disc_clip.path, tmp_path, config=config, steps=1, device="cpu")
    assert model.crop.aligned is True
    assert model.config.data.any_orientation == "off"  # turns would undo the alignment
    reloaded = api.load_model(tmp_path / "checkpoint.pt")
    assert reloaded.crop.aligned is True
    side = model.crop.box_side
    tracks = api.track(disc_clip.path, reloaded)
    found = np.isfinite(tracks.keypoints).all(axis=(1, 2, 3))
    assert found.mean() > 0.9
    distance = np.linalg.norm(tracks.keypoints[found, 0] - disc_clip.centres[found][:, None, :], axis=-1)
    assert distance.max() <= side / np.sqrt(2) + 3  # inside the turned box around the disc


def test_train_never_replaces_a_checkpoint_unasked(disc_clip: SyntheticClip, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"earlier run")
    with pytest.raises(FommError, match="already holds a trained model"):
        api.train(disc_clip.path, out, config="tiny", steps=1)
    with pytest.raises(FommError, match="keeps its checkpoint's config"):
        api.train(disc_clip.path, out, config="tiny", steps=1, existing="resume")
    assert (out / "checkpoint.pt").read_bytes() == b"earlier run"
