"""Tracking several subjects with one detector: (T, N, K, 2) in frame pixels, identities kept,
NaN keypoints and score 0 for subjects that are not there, never a crash."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fomm_kp.runtime.tracking import track
from fomm_kp.tracks import load_tracks
from fomm_kp.video import probe

from conftest import crossing_frames, untrained_model, write_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("subjects")
    return {paths: (write_video(folder / f"{paths}.mp4", crossing_frames(24, paths)[0]), crossing_frames(24, paths)[1])
            for paths in ("cross", "leave")}


def _model(subjects: int, aligned: bool = True):
    return untrained_model({"localized": True, "box_side": 24.0, "aligned": aligned, "subjects": subjects})


def test_each_subject_is_tracked_in_its_own_crop(clips: dict, tmp_path: Path) -> None:
    path, centres = clips["cross"]
    tracks = track(path, _model(2), out=tmp_path / "t.npz", overlay=tmp_path / "o.mp4")
    k = tracks.num_keypoints
    assert tracks.keypoints.shape == (24, 2, k, 2) and tracks.subject_names == ("subject0", "subject1")
    assert tracks.identities.shape == (24, 2) and (tracks.identities > 0).all()
    assert np.isfinite(tracks.keypoints).all() and tracks.jacobians.shape == (24, 2, k, 2, 2)
    # every keypoint lies in its subject's 24-px crop, so near that subject and not the other
    far = np.linalg.norm(centres[:, 0] - centres[:, 1], axis=1) > 40
    for s in range(2):
        near = np.linalg.norm(tracks.keypoints[far, s] - centres[far, s][:, None], axis=-1)
        assert near.max() < 24 * np.sqrt(2) / 2 + 2
    back = load_tracks(tmp_path / "t.npz")
    np.testing.assert_array_equal(back.identities, tracks.identities)
    assert probe(tmp_path / "o.mp4").num_frames == 24


def test_keypoints_map_back_through_each_subjects_turned_box(clips: dict) -> None:
    """One detector call per crop: a subject's keypoints equal the network's output mapped through its box."""
    from fomm_kp.localize.crop_rule import model_subjects_crops
    from fomm_kp.video import crop_frame, iter_frames, resize_frame

    path, _ = clips["cross"]
    model = _model(2)
    tracks = track(path, model)
    located = model_subjects_crops(path, model.crop, model.config.data)
    frame = next(frame for index, frame in iter_frames(path, start=5, stop=6))
    for s in range(2):
        crop = resize_frame(crop_frame(frame, located.boxes[5, s]), model.detector_size)
        alone = model.detect_resized(np.array(crop[None]), located.boxes[5, s][None]).keypoints[0]
        np.testing.assert_allclose(tracks.keypoints[5, s], alone, atol=1e-3)


def test_more_subjects_than_animals_give_nan_and_score_zero(clips: dict) -> None:
    path, _ = clips["cross"]
    tracks = track(path, _model(3))
    assert tracks.keypoints.shape[1] == 3
    assert np.isnan(tracks.keypoints[:, 2]).all() and (tracks.scores[:, 2] == 0).all()
    assert (tracks.identities[:, 2] == 0).all() and np.isfinite(tracks.keypoints[:, :2]).all()


def test_a_subject_that_leaves_the_frame(clips: dict) -> None:
    path, centres = clips["leave"]
    tracks = track(path, _model(2, aligned=False))
    gone = np.flatnonzero(np.isnan(centres[:, 1, 0]))
    assert len(gone) > 8
    late = gone[gone >= gone[0] + 2]  # a frame or two at the edge may still show part of it
    assert np.isnan(tracks.keypoints[late, 1]).all() and (tracks.scores[late, 1] == 0).all()
    assert np.isfinite(tracks.keypoints[:, 0]).all()


def test_subjects_override_and_one_subject_as_before(clips: dict) -> None:
    from fomm_kp.crops import CropSettings

    path, _ = clips["cross"]
    model = _model(2)
    one = track(path, model, crop=dataclasses.replace(model.crop, subjects=1))
    assert one.keypoints.shape[1] == 1 and one.identities is None
    auto = track(path, model, crop=dataclasses.replace(model.crop, subjects=0))  # count them
    assert auto.keypoints.shape[1] == 2
    single = untrained_model({"localized": True, "box_side": 24.0, "aligned": True})
    assert isinstance(single.crop, CropSettings) and single.crop.subjects == 1
    np.testing.assert_allclose(track(path, single).keypoints, one.keypoints, atol=1e-5)
