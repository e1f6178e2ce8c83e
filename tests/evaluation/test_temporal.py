"""Jitter of keypoint tracks on still frames: displacement, stillness from labels and from frames."""

from __future__ import annotations

import numpy as np
import pytest

from fomm_kp.errors import FommError
from fomm_kp.evaluation.temporal import displacement, jitter, still_from_frames, still_from_labels
from fomm_kp.tracks.smoothing import Smoothing, smooth_keypoints

from conftest import write_video


def test_displacement_is_the_step_length():
    points = np.array([[[0.0, 0.0]], [[3.0, 4.0]], [[3.0, 4.0]], [[np.nan, 1.0]]])
    moved = displacement(points)
    assert moved.shape == (3, 1)
    np.testing.assert_allclose(moved[:2, 0], [5.0, 0.0])
    assert np.isnan(moved[2, 0])
    with pytest.raises(FommError, match=r"\(T, K, 2\)"):
        displacement(np.zeros((4, 2)))


def test_still_from_labels_takes_the_pairs_whose_labels_move_least():
    steps = np.array([5.0, 0.1, 3.0, 0.2, 4.0, 6.0, 0.3, 7.0, 8.0, 9.0])  # one step per pair
    labels = np.zeros((11, 2, 2))
    labels[1:, 0, 0] = np.cumsum(steps)  # part 0 moves by the step, part 1 stays put
    still = still_from_labels(labels, quantile=0.2)
    assert still.tolist() == [s <= np.quantile(steps, 0.2) for s in steps]
    assert still.sum() == 2 and still[1] and still[3]
    labels[2, 1] = np.nan  # pairs (1, 2) and (2, 3) have a part missing: never still
    assert not still_from_labels(labels, quantile=0.2)[1]
    with pytest.raises(FommError, match="no pair"):
        still_from_labels(np.full((5, 1, 2), np.nan))


def test_still_from_frames_finds_the_frames_that_do_not_change(tmp_path):
    frames = np.full((20, 64, 64, 3), 100, np.uint8)
    place = np.arange(20) * 2
    place[9], place[15] = place[8], place[14]  # the square stays put from frame 8 to 9 and 14 to 15
    for t, x in enumerate(place):
        frames[t, 20:36, x:x + 16] = 255
    video = write_video(tmp_path / "squares.mp4", frames)
    still = still_from_frames(video, stop=20, quantile=0.1)
    assert still.shape == (19,)
    assert np.flatnonzero(still).tolist() == [8, 14]


def test_smoothing_cuts_the_jitter_of_a_still_noisy_keypoint():
    rng = np.random.default_rng(1)
    points = 50.0 + rng.normal(0.0, 1.0, (400, 3, 2))  # keypoints that should not move, with noise
    scores = np.ones((400, 3))
    still = np.ones(399, bool)
    raw = jitter([points], [still])
    assert raw == pytest.approx(np.sqrt(2) * np.sqrt(np.log(4)), rel=0.1)  # median of a Rayleigh of sigma sqrt(2)
    smoothed = jitter([smooth_keypoints(points, scores, Smoothing(window=9))], [still])
    assert smoothed < 0.5 * raw
    with pytest.raises(FommError, match="one or more"):
        jitter([points], [])
