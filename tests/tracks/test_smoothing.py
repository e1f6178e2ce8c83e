"""Confidence-weighted temporal smoothing of tracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fomm_kp.errors import FommError
from fomm_kp.tracks import Tracks, load_tracks, save_tracks
from fomm_kp.tracks.smoothing import Smoothing, smooth_keypoints, smooth_tracks


def test_polynomials_up_to_the_order_pass_unchanged_whatever_the_confidences() -> None:
    t = np.arange(60.0)
    points = np.stack([0.02 * t**2 - 3 * t + 5, 7 - 0.5 * t], axis=-1)[:, None]  # (T, 1, 2)
    scores = np.random.default_rng(0).uniform(0.05, 1.0, (60, 1))
    for window in (3, 7, 15):
        out = smooth_keypoints(points, scores, Smoothing(window=window, order=2))
        np.testing.assert_allclose(out, points, atol=1e-3)


def test_noise_on_a_still_point_is_cut_and_a_low_confidence_outlier_ignored() -> None:
    rng = np.random.default_rng(1)
    still = np.full((400, 1, 2), 50.0) + rng.normal(0, 1.0, (400, 1, 2))
    scores = np.ones((400, 1))
    out = smooth_keypoints(still, scores, Smoothing(window=9))
    jitter = lambda p: np.median(np.linalg.norm(np.diff(p, axis=0), axis=-1))  # noqa: E731
    assert jitter(out) < 0.5 * jitter(still)
    spiky = np.full((21, 1, 2), 10.0)
    spiky[10] = 60.0
    weights = np.ones((21, 1))
    weights[10] = 0.001  # the detector was unsure there
    out = smooth_keypoints(spiky, weights, Smoothing(window=7))
    assert np.abs(out[10] - 10.0).max() < 0.5


def test_missing_points_stay_missing_and_are_not_used() -> None:
    points = np.tile(np.arange(30.0)[:, None, None], (1, 1, 2))
    points[12:15] = np.nan
    scores = np.ones((30, 1))
    out = smooth_keypoints(points, scores, Smoothing(window=5, order=1))
    assert np.isnan(out[12:15]).all() and np.isfinite(np.delete(out, [12, 13, 14], axis=0)).all()
    np.testing.assert_allclose(out[:10, 0, 0], np.arange(10.0), atol=1e-4)


def test_smooth_tracks_records_itself_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    tracks = Tracks(keypoints=rng.random((20, 2, 3, 2)) * 10, scores=np.ones((20, 2, 3)), frame_indices=np.arange(20),
                    fps=25.0)
    smoothed = smooth_tracks(tracks, Smoothing(window=5))
    assert smoothed.keypoints.shape == tracks.keypoints.shape
    assert smoothed.metadata["smoothing"]["window"] == 5
    loaded = load_tracks(save_tracks(smoothed, tmp_path / "t.npz"))
    assert loaded.metadata == smoothed.metadata
    np.testing.assert_array_equal(loaded.keypoints, smoothed.keypoints)


@pytest.mark.parametrize("kwargs", [{"window": 4}, {"window": 1}, {"order": 5}, {"window": 3, "order": 3},
                                    {"min_score": 1.5}])
def test_bad_smoothing_settings_are_one_clear_error(kwargs: dict) -> None:
    with pytest.raises(FommError):
        Smoothing(**kwargs)
