"""Training on several clips: clip lists, pairs within one clip, clips weighted by length."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import fomm_kp
from fomm_kp.checkpoint import read_checkpoint
from fomm_kp.errors import FommError
from fomm_kp.training.clips import ClipPairs, training_clips
from fomm_kp.training.dataset import FramePairs, TrainingFrames
from fomm_kp.training.streams import data_streams

from conftest import disc_frames, tiny_whole_frame, write_video


def clip_frames(clip: int, count: int, size: int = 8) -> TrainingFrames:
    """Frame i of clip c is filled with 80·c + i (i < 80): a sampled image tells its clip and frame."""
    frames = np.stack([np.full((size, size, 3), 80 * clip + i, dtype=np.uint8) for i in range(count)])
    return TrainingFrames(frames, np.arange(count), np.tile([0.0, 0.0, size, size], (count, 1)), 25.0, f"clip{clip}")


def clip_pairs(counts: list[int], max_gap: int = 30, seed: int = 0) -> ClipPairs:
    samplers = [FramePairs(clip_frames(c, n), 1, max_gap, flip=True, color_jitter=0.0, seed=c) for c, n in enumerate(counts)]
    return ClipPairs(samplers, counts, seed=seed)


def test_pairs_never_join_two_clips() -> None:
    pairs = clip_pairs([5, 40, 2], max_gap=1000)
    for step in range(30):
        clip, first, second = pairs.sample_indices(data_streams(0, step, range(16)))
        counts = np.array([5, 40, 2])[clip]
        assert (first < counts).all() and (second < counts).all() and (first != second).all()
        source, driving, _ = pairs.sample(16, step)
        assert source.shape == driving.shape == (16, 3, 8, 8)
        values_s = (source[:, 0, 0, 0] * 255).round().long()
        values_d = (driving[:, 0, 0, 0] * 255).round().long()
        torch.testing.assert_close(values_s // 80, values_d // 80)  # same clip
        assert (values_s != values_d).all()  # different frames of it


def _bits(value: int, size: int = 8) -> np.ndarray:
    return np.array([(value >> b) & 1 for b in range(size)], dtype=np.uint8)


def test_masks_travel_with_their_frames() -> None:
    samplers = []
    for c, n in enumerate([5, 12]):
        data = clip_frames(c, n)
        masks = np.zeros(data.frames.shape[:3], dtype=np.uint8)
        masks[:, 0, :] = np.stack([_bits(80 * c + i) for i in range(n)])  # row 0 spells the frame's value
        samplers.append(FramePairs(dataclasses.replace(data, masks=masks), 1, 30, flip=False, color_jitter=0.0, seed=c))
    pairs = ClipPairs(samplers, [5, 12], seed=3)
    pair = pairs.sample(10)
    assert pair.masks.shape == (20, 1, 8, 8)
    weights = torch.tensor([1 << b for b in range(8)], dtype=torch.float32)
    spelled = (pair.masks[:, 0, 0, :] * weights).sum(-1).long()
    values = torch.cat([pair.source, pair.driving])[:, 0, 0, 0].mul(255).round().long()
    torch.testing.assert_close(spelled, values)


def test_clips_are_drawn_in_proportion_to_their_length() -> None:
    pairs = clip_pairs([10, 30, 60])
    chosen = pairs.choose_clips(data_streams(0, 0, range(20000)))
    shares = np.bincount(chosen, minlength=3) / len(chosen)
    np.testing.assert_allclose(shares, [0.1, 0.3, 0.6], atol=0.015)
    clip = (pairs.sample(4000)[0][:, 0, 0, 0] * 255).round().long() // 80
    np.testing.assert_allclose(np.bincount(clip.numpy(), minlength=3) / 4000, [0.1, 0.3, 0.6], atol=0.03)


def test_a_batch_is_the_same_whichever_process_draws_which_part() -> None:
    pairs = clip_pairs([6, 9, 20])
    whole = pairs.sample(8, step=5)
    halves = [pairs.sample(4, step=5, first=0), pairs.sample(4, step=5, first=4)]
    for a, b, c in zip(whole[:2], halves[0][:2], halves[1][:2]):  # source, driving (no masks here)
        torch.testing.assert_close(a, torch.cat([b, c]))
    other_step = pairs.sample(8, step=6)
    assert not torch.equal(whole.source, other_step.source)


def test_bad_clip_lists() -> None:
    with pytest.raises(FommError):
        ClipPairs([], [])
    with pytest.raises(FommError):
        ClipPairs([FramePairs(clip_frames(0, 3), 1, 2, False, 0.0)], [0.0])


def test_training_clips_from_paths_and_folders(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("b.mp4", "a.avi", "notes.txt"):
        (videos / name).write_bytes(b"")
    assert training_clips(videos) == [videos / "a.avi", videos / "b.mp4"]
    images = tmp_path / "images"
    images.mkdir()
    iio.imwrite(images / "0001.png", np.zeros((4, 4, 3), np.uint8))
    assert training_clips([images, videos / "a.avi"]) == [images, videos / "a.avi"]
    assert training_clips(str(videos / "b.mp4")) == [videos / "b.mp4"]
    iio.imwrite(videos / "0001.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FommError, match="both videos and images"):
        training_clips(videos)
    with pytest.raises(FommError, match="twice"):
        training_clips([images, images])
    with pytest.raises(FommError):
        training_clips([])


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("two")
    return [write_video(folder / f"{name}.mp4", disc_frames(num_frames=count, seed=seed)[0])
            for name, count, seed in (("a", 12, 1), ("b", 20, 2))]


def test_train_on_a_folder_of_clips(two_clips: list[Path], tmp_path: Path) -> None:
    model = fomm_kp.train(two_clips[0].parent, tmp_path / "run", config=tiny_whole_frame(), steps=2, device="cpu")
    assert model.meta["videos"] == [str(p) for p in two_clips]
    assert model.meta["num_training_frames"] == 32


def test_one_clip_in_a_list_trains_exactly_as_the_clip_alone(two_clips: list[Path], tmp_path: Path) -> None:
    config = tiny_whole_frame()
    fomm_kp.train(two_clips[0], tmp_path / "alone", config=config, steps=2, device="cpu")
    fomm_kp.train([two_clips[0]], tmp_path / "list", config=config, steps=2, device="cpu")
    alone, listed = (read_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("alone", "list"))
    assert "videos" not in listed.meta
    for part in ("detector", "generator"):
        for key, value in alone.state_dicts[part].items():
            torch.testing.assert_close(listed.state_dicts[part][key], value, rtol=0, atol=0)
