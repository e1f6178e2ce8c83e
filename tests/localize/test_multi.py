"""Several subjects in one video: synthetic shapes that cross, touch, overlap and leave the frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fomm_kp.config import DataConfig, IdentityConfig, LocalizeConfig
from fomm_kp.crops import CropSettings
from fomm_kp.errors import FommError
from fomm_kp.localize.background import background_from_frames, reduce_frame
from fomm_kp.localize.blobs import foreground_parts
from fomm_kp.localize.crop_rule import SubjectsCrops, model_crops, subject_crops, training_crops
from fomm_kp.localize.multi import bridge_gaps, find_candidates, subjects_for_video, survey

from conftest import crossing_frames, write_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("multi")
    out = {}
    for paths in ("cross", "three", "leave"):
        frames, centres = crossing_frames(40, paths)
        out[paths] = (write_video(folder / f"{paths}.mp4", frames), frames, centres)
    return out


def _matched_shapes(located, centres: np.ndarray, apart: float = 12.0) -> list[set[int]]:
    """Per subject, the true shapes it was nearest to (within 6 px) in frames where every true shape
    present is at least ``apart`` px from every other (outside a full overlap the answer is unambiguous)."""
    shapes = [set() for _ in range(located.count)]
    for t in range(len(located)):
        present = np.flatnonzero(np.isfinite(centres[t]).all(axis=1))
        gaps = [np.linalg.norm(centres[t, a] - centres[t, b]) for a in present for b in present if a < b]
        if gaps and min(gaps) < apart:
            continue
        for s in np.flatnonzero(located.found[t]):
            distance = np.linalg.norm(centres[t] - located.centres[t, s], axis=1)
            if np.nanmin(distance) < 6.0:
                shapes[s].add(int(np.nanargmin(distance)))
    return shapes


@pytest.mark.parametrize("paths, count", [("cross", 2), ("three", 3), ("cross", "auto"), ("three", "auto")])
def test_identities_are_kept_through_crossings(clips: dict, paths: str, count) -> None:
    path, _, centres = clips[paths]
    located = subjects_for_video(path, subjects=count)
    expected = centres.shape[1]
    assert located.count == expected and located.boxes.shape == (40, expected, 4)
    shapes = _matched_shapes(located, centres)
    assert all(len(s) == 1 for s in shapes), shapes  # each subject followed one shape throughout
    assert sorted(next(iter(s)) for s in shapes) == list(range(expected))  # and every shape has a subject
    assert located.present.all()  # misses while overlapping are bridged
    assert located.found.mean() > 0.85
    assert (located.identity[located.present] > 0).all() and (located.identity <= 1).all()
    sides = located.boxes[..., 2] - located.boxes[..., 0]
    assert (sides == located.side).all()
    # lower identity confidence where the shapes touch than where they are far apart
    distance = np.linalg.norm(centres[:, 0] - centres[:, 1], axis=1)
    assert located.identity[distance < 15].min() < located.identity[distance > 60].min()


def test_more_subjects_than_animals_and_an_animal_that_leaves(clips: dict) -> None:
    path, _, centres = clips["cross"]
    located = subjects_for_video(path, subjects=3)
    assert located.count == 3 and not located.found[:, 2].any() and not located.present[:, 2].any()
    assert (located.identity[:, 2] == 0).all() and np.isfinite(located.boxes).all()

    path, _, centres = clips["leave"]
    located = subjects_for_video(path, subjects=2)
    gone = np.isnan(centres[:, 1, 0])  # the second shape is outside the frame from about frame 13
    assert gone[-20:].all()
    assert located.found[:, 0].all()
    assert not located.present[-20:, 1].any() and (located.identity[-20:, 1] == 0).all()
    assert _matched_shapes(located, centres) == [{0}, {1}]


def test_touching_subjects_are_split_by_their_predicted_positions() -> None:
    frames, centres = crossing_frames(40, "cross")
    config, identity = LocalizeConfig(), IdentityConfig()
    background = background_from_frames([np.median(frames, axis=0).astype(np.uint8)] * 3, config)
    typical = survey([reduce_frame(f, background.factor) for f in frames[::8]], background, config, identity, 2)
    distance = np.linalg.norm(centres[:, 0] - centres[:, 1], axis=1)
    touching = [t for t in np.flatnonzero(distance < 16)
                if (foreground_parts(reduce_frame(frames[t], 1), background, config)[2][1:] > 20).sum() == 1]
    assert touching  # frames where the two shapes are one foreground part
    t = touching[0]
    reduced = reduce_frame(frames[t], background.factor)
    one_claim = np.array([centres[t, 0], [np.nan, np.nan]])
    assert len(find_candidates(reduced, background, config, identity, typical, one_claim)) == 1
    for predicted in (centres[t], None):  # split at the predictions, or with none at the body peaks
        split = find_candidates(reduced, background, config, identity, typical, predicted)
        assert len(split) == 2 and all(c.split for c in split)
        found = np.array([c.blob.centre for c in split])
        assert np.linalg.norm(found[np.argsort(found[:, 0])] - centres[t], axis=1).max() < 6.0


def test_bridge_gaps() -> None:
    found = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0], dtype=bool)
    assert bridge_gaps(found, 2).astype(int).tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0]


def test_crop_rule_with_several_subjects(clips: dict) -> None:
    path, _, _ = clips["three"]
    data = DataConfig(localize="on", subjects=3)
    located, settings, _, _ = training_crops(path, data)
    assert isinstance(located, SubjectsCrops) and located.boxes.shape[:2] == (40, 3)
    assert settings.subjects == 3 and settings.localized
    assert located.boxes.shape[-1] == (5 if settings.aligned else 4)
    settings_auto = training_crops(path, DataConfig(localize="on", subjects="auto")).settings
    assert settings_auto.subjects == 3
    # a model trained on several subjects: tracking follows them all, older callers get the first
    trained = CropSettings(localized=True, box_side=24.0, aligned=settings.aligned, subjects=3)
    first, own = model_crops(path, trained, data), located.subject(0)
    assert ((first.boxes[:, 2] - first.boxes[:, 0]) == 24).all()  # the model's box side
    np.testing.assert_allclose(first.boxes[:, :4].reshape(-1, 2, 2).mean(axis=1),
                               own.boxes[:, :4].reshape(-1, 2, 2).mean(axis=1), atol=1.0)  # around the same subject
    with pytest.raises(FommError, match="several subjects need localisation"):
        subject_crops(path, DataConfig(localize="off", subjects=2))


def test_settings_refuse_bad_subject_counts() -> None:
    with pytest.raises(FommError, match="subjects must be auto or an integer"):
        DataConfig(subjects=0)
    with pytest.raises(FommError, match="subjects must be auto or an integer"):
        DataConfig(subjects="many")
    with pytest.raises(FommError, match="need localised crops"):
        CropSettings(subjects=2)
    assert CropSettings.from_meta(CropSettings(localized=True, subjects=2).to_meta()).subjects == 2
    assert "subjects" not in CropSettings(localized=True).to_meta()  # one subject: metadata as before


def test_no_subject_at_all(tmp_path: Path) -> None:
    frames = np.full((12, 60, 80, 3), 128, dtype=np.uint8)
    path = write_video(tmp_path / "empty.mp4", frames)
    with pytest.raises(FommError, match="no subject distinct from the background"):
        subjects_for_video(path, subjects=2)


def test_auto_that_finds_one_subject_trains_as_one(tmp_path: Path) -> None:
    from fomm_kp.localize.crop_rule import SubjectCrops

    from conftest import synthetic_frames

    path = write_video(tmp_path / "one.mp4", synthetic_frames(30)[0])
    crops, settings, _, _ = training_crops(path, DataConfig(localize="on", subjects="auto"))
    assert settings.subjects == 1 and isinstance(crops, SubjectCrops) and crops.found.all()
