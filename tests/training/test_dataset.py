"""Training frames of one clip and (source, driving) pair sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fomm_kp.errors import FommError
from fomm_kp.localize import SubjectCrops
from fomm_kp.training.dataset import FramePairs, TrainingFrames, load_training_frames

from conftest import SyntheticClip, disc_frames, write_video


def frames_of(count: int, size: int = 8, stride: int = 1) -> TrainingFrames:
    """Frame i is filled with the value i (so a sampled image tells which frame it came from)."""
    frames = np.stack([np.full((size, size, 3), i, dtype=np.uint8) for i in range(count)])
    boxes = np.tile([0.0, 0.0, size, size], (count, 1))
    return TrainingFrames(frames, np.arange(count) * stride, boxes, 25.0, "synthetic")


@pytest.mark.parametrize(
    "count, min_gap, max_gap",
    [(2, 1, 30), (2, 5, 5), (3, 2, 2), (5, 4, 4), (5, 3, 30), (10, 1, 30), (40, 1, 3), (40, 10, 12), (7, 50, 60)],
)
def test_pairs_always_in_range_with_gaps_in_bounds(count: int, min_gap: int, max_gap: int) -> None:
    pairs = FramePairs(frames_of(count), min_gap, max_gap, flip=False, color_jitter=0.0, seed=1)
    assert 1 <= pairs.min_gap <= pairs.max_gap <= count - 1
    # The requested gaps hold wherever the clip is long enough for them.
    assert pairs.min_gap == min(min_gap, count - 1)
    assert pairs.max_gap == min(max_gap, count - 1)
    first, second = pairs.sample_indices(4000)
    assert first.shape == second.shape == (4000,)
    for index in (first, second):
        assert index.min() >= 0 and index.max() <= count - 1
    gaps = np.abs(second - first)
    assert gaps.min() >= pairs.min_gap and gaps.max() <= pairs.max_gap
    assert set(np.unique(gaps)) == set(range(pairs.min_gap, pairs.max_gap + 1))  # every gap occurs
    assert 0.45 < np.mean(second > first) < 0.55  # both directions equally likely
    # Every frame that has a partner at an allowed gap is used.
    usable = {i for i in range(count) if i + pairs.min_gap <= count - 1 or i - pairs.min_gap >= 0}
    assert set(np.unique(np.concatenate([first, second]))) == usable


def test_gaps_are_in_original_frames_when_frames_are_strided() -> None:
    pairs = FramePairs(frames_of(50, stride=4), min_gap=8, max_gap=20, flip=False, color_jitter=0.0)
    assert (pairs.min_gap, pairs.max_gap) == (2, 5)
    first, second = pairs.sample_indices(1000)
    assert np.abs(second - first).min() >= 2 and np.abs(second - first).max() <= 5


def test_one_frame_is_an_error() -> None:
    with pytest.raises(FommError, match="at least 2"):
        FramePairs(frames_of(1), 1, 5, flip=False, color_jitter=0.0)


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batches_are_full_even_for_a_two_frame_clip(batch_size: int) -> None:
    pairs = FramePairs(frames_of(2), 1, 30, flip=True, color_jitter=0.1)
    for _ in range(3):
        source, driving, _ = pairs.sample(batch_size)
        assert source.shape == driving.shape == (batch_size, 3, 8, 8)
        assert source.dtype == torch.float32
        assert (source >= 0).all() and (source <= 1).all()
        assert (driving >= 0).all() and (driving <= 1).all()


def _pattern_pairs(count: int, pattern_seed: int, step: int, **augment):
    """Sample 64 pairs from frames that are an asymmetric pattern plus a frame-specific offset ``step·i``.

    Returns ``(first, second, source, driving, as_image)``: the sampled frame indices, the sampled
    (augmented) pairs and the unaugmented frames as ``(T, 3, S, S)`` floats, to compare against.
    """
    size = 6
    pattern = np.random.default_rng(pattern_seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    frames = np.stack([(pattern.astype(int) + step * i) % 256 for i in range(count)]).astype(np.uint8)
    data = TrainingFrames(frames, np.arange(count), np.tile([0.0, 0, size, size], (count, 1)), 25.0, "x")
    pairs = FramePairs(data, 1, 4, color_jitter=0.0, **augment)
    state = pairs.rng.bit_generator.state
    first, second = pairs.sample_indices(64)
    pairs.rng.bit_generator.state = state  # sample() draws the same indices first
    source, driving, _ = pairs.sample(64)
    return first, second, source, driving, torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("flip_vertical", [False, True])
def test_sample_pairs_match_their_indices_and_flip_together(flip_vertical: bool) -> None:
    """Left-right mirror flips by default; top-bottom ones for crops turned to face right."""
    first, second, source, driving, as_image = _pattern_pairs(12, pattern_seed=0, step=7, flip=True, seed=3,
                                                              flip_vertical=flip_vertical)
    dim = -2 if flip_vertical else -1
    flipped_any = False
    for b in range(64):
        src_plain = torch.allclose(source[b], as_image[first[b]])
        src_flip = torch.allclose(source[b], as_image[first[b]].flip(dim))
        drv_plain = torch.allclose(driving[b], as_image[second[b]])
        drv_flip = torch.allclose(driving[b], as_image[second[b]].flip(dim))
        assert src_plain != src_flip and drv_plain != drv_flip
        assert src_flip == drv_flip  # one augmentation per pair
        flipped_any |= src_flip
    assert flipped_any


def test_color_jitter_is_shared_by_the_pair() -> None:
    data = frames_of(4)
    data = TrainingFrames(np.full_like(data.frames, 128), data.frame_indices, data.boxes, 25.0, "x")
    pairs = FramePairs(data, 1, 3, flip=False, color_jitter=0.3, seed=0)
    source, driving, _ = pairs.sample(32)
    assert torch.allclose(source, driving)  # identical frames stay identical after jitter
    assert source.std(dim=0).max() > 0.01  # but the jitter differs between pairs


def test_load_training_frames(disc_clip: SyntheticClip) -> None:
    data = load_training_frames(disc_clip.path, size=32, max_frames=100)
    assert data.frames.shape == (24, 32, 32, 3) and data.frames.dtype == np.uint8
    np.testing.assert_array_equal(data.frame_indices, np.arange(24))
    np.testing.assert_array_equal(data.boxes, np.tile([0, 0, 64, 48], (24, 1)))
    assert data.fps == pytest.approx(10.0)
    strided = load_training_frames(disc_clip.path, size=16, max_frames=10)
    np.testing.assert_array_equal(strided.frame_indices, np.arange(0, 24, 3))
    assert strided.frames.shape == (8, 16, 16, 3)


def test_load_training_frames_with_boxes(disc_clip: SyntheticClip) -> None:
    indices = np.array([2, 5, 9, 13])  # frames without a box are skipped
    boxes = np.array([[c[0] - 12, c[1] - 12, c[0] + 12, c[1] + 12] for c in disc_clip.centres[indices]])
    crops = SubjectCrops(indices, boxes, np.ones(len(indices), bool))
    data = load_training_frames(disc_clip.path, size=24, max_frames=100, crops=crops)
    np.testing.assert_array_equal(data.frame_indices, indices)
    np.testing.assert_allclose(data.boxes, boxes)
    # Each crop is centred on the disc: the centre is bright disc texture, unlike the background.
    centre = data.frames[:, 9:15, 9:15].astype(float).mean()
    corners = data.frames[:, :3, :3].astype(float).mean()
    assert centre > corners + 40
    with pytest.raises(FommError, match="usable frame"):
        load_training_frames(disc_clip.path, 24, 100, SubjectCrops(indices[:1], boxes[:1], np.ones(1, bool)))


def test_one_frame_video_is_an_error(tmp_path: Path) -> None:
    frames, _ = disc_frames(num_frames=1, width=16, height=16, radius=3)
    path = write_video(tmp_path / "one.mp4", frames)
    with pytest.raises(FommError, match="at least 2"):
        load_training_frames(path, 16, 100)


def test_quarter_turns_rotate_both_frames_of_a_pair_alike() -> None:
    first, second, source, driving, as_image = _pattern_pairs(10, pattern_seed=1, step=11, flip=False, seed=5,
                                                              rotate90=True)
    seen = set()
    for b in range(64):
        turns = [k for k in range(4) if torch.allclose(source[b], as_image[first[b]].rot90(k, dims=(-2, -1)))]
        assert len(turns) == 1  # the pattern has no rotational symmetry
        assert torch.allclose(driving[b], as_image[second[b]].rot90(turns[0], dims=(-2, -1)))
        seen.add(turns[0])
    assert seen == {0, 1, 2, 3}


def test_foreground_masks_find_the_subject_and_travel_with_their_frames() -> None:
    """A bright square on a dark textured scene: the mask covers it (grown by a pixel) and nothing
    else, and flips/turns of a pair apply to its masks exactly as to its frames."""
    from fomm_kp.training.dataset import foreground_masks

    rng = np.random.default_rng(0)
    scene = (rng.random((40, 40, 3)) * 30).astype(np.uint8)
    frames, truth = [], []
    for i in range(12):
        frame = scene.copy()
        x = 4 + 2 * i
        frame[10:18, x : x + 8] = 220
        frames.append(frame)
        inside = np.zeros((40, 40), bool)
        inside[10:18, x : x + 8] = True
        truth.append(inside)
    data = TrainingFrames(np.stack(frames), np.arange(12), np.tile([0.0, 0.0, 40.0, 40.0], (12, 1)), 25.0, "synthetic")
    masks = foreground_masks(data, scene)
    for mask, inside in zip(masks.astype(bool), truth):
        assert mask[inside].all()  # the subject is foreground
        near = np.zeros_like(inside)
        padded = np.pad(inside, 1)
        for dy in range(3):
            for dx in range(3):
                near |= padded[dy : dy + 40, dx : dx + 40]
        assert not mask[~near].any()  # and nothing farther than one pixel from it
    paired = FramePairs(TrainingFrames(data.frames, data.frame_indices, data.boxes, 25.0, "synthetic", masks),
                        1, 3, flip=True, color_jitter=0.0, seed=3, rotate90=True)
    for _ in range(5):
        pair = paired.sample(8)
        assert pair.masks.shape == (16, 1, 40, 40)
        for images, masks_half in ((pair.source, pair.masks[:8]), (pair.driving, pair.masks[8:])):
            bright = images.mean(dim=1, keepdim=True) > 0.6  # the square, wherever flips and turns took it
            assert torch.equal(bright & (masks_half > 0), bright)


def test_pairs_without_masks_have_none() -> None:
    pair = FramePairs(frames_of(6), 1, 2, flip=True, color_jitter=0.1, seed=0).sample(3)
    assert pair.masks is None and pair.source.shape == (3, 3, 8, 8)


def test_pairs_of_several_subjects_never_join_two_subjects() -> None:
    """Crops of three subjects, one after another (runs of 30, 2 and 18 crops): a pair is always two
    crops of one subject, at a gap in bounds; the two-crop subject is paired too."""
    runs = (30, 2, 18)
    data = frames_of(sum(runs))
    subjects = np.repeat(np.arange(3), runs)
    frame_indices = np.concatenate([np.arange(r) for r in runs])
    data = TrainingFrames(data.frames, frame_indices, data.boxes, 25.0, "synthetic", subjects=subjects)
    pairs = FramePairs(data, min_gap=1, max_gap=10, flip=False, color_jitter=0.0, seed=3)
    first, second = pairs.sample_indices(5000)
    assert (subjects[first] == subjects[second]).all()
    gaps = np.abs(second - first)
    assert gaps.min() >= 1 and gaps.max() <= 10
    assert set(np.unique(subjects[first])) == {0, 1, 2}


def test_training_frames_of_several_subjects(tmp_path: Path) -> None:
    from fomm_kp.localize.crop_rule import SubjectsCrops

    frames, _ = disc_frames(num_frames=12, width=64, height=48)
    path = write_video(tmp_path / "d.mp4", frames)
    boxes = np.stack([np.tile([0.0, 0.0, 32.0, 32.0], (12, 1)), np.tile([32.0, 16.0, 64.0, 48.0], (12, 1))], axis=1)
    found = np.ones((12, 2), bool)
    found[3:6, 1] = False
    data = load_training_frames(path, 16, 100, SubjectsCrops(np.arange(12), boxes, found, found.astype(float)))
    assert data.frames.shape == (12 + 9, 16, 16, 3) and data.subjects.tolist() == [0] * 12 + [1] * 9
    assert data.frame_indices[12:].tolist() == [0, 1, 2, 6, 7, 8, 9, 10, 11]
    np.testing.assert_array_equal(data.boxes[12], boxes[0, 1])
    none = SubjectsCrops(np.arange(12), boxes, np.zeros((12, 2), bool), np.zeros((12, 2)))
    with pytest.raises(FommError, match="no subject"):
        load_training_frames(path, 16, 100, none)
