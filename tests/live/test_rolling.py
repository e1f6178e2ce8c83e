"""Behaviour while the stream runs: rolling windows labelled as offline, bouts, keypoint smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import behaviour_tracks
from fomm_kp.behaviour.fitting import fit_classifier
from fomm_kp.behaviour.frame_labels import predict_windows
from fomm_kp.behaviour.segments import Segment
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.errors import FommError
from fomm_kp.live.rolling import BoutTracker, KeypointSmoother, RollingWindow, WindowLabels, label_window
from fomm_kp.runtime.detector import Detections
from fomm_kp.tracks import Tracks

CONFIG = FeatureConfig(window_seconds=(0.5, 1.0), stride_seconds=0.25)


def _with_local_shapes(tracks: Tracks, seed: int = 0) -> Tracks:
    """The tracks with jacobians and covariances, as a detector gives them."""
    rng = np.random.default_rng(seed)
    t, n, k = tracks.scores.shape
    jacobians = (np.eye(2) + 0.05 * rng.normal(size=(t, n, k, 2, 2))).astype(np.float32)
    covariances = np.tile(np.eye(2, dtype=np.float32) * 4.0, (t, n, k, 1, 1))
    scores = rng.uniform(0.5, 1.0, (t, n, k)).astype(np.float32)
    return Tracks(tracks.keypoints, scores, tracks.frame_indices, tracks.fps, jacobians, covariances, tracks.video,
                  ("kp0", "kp1", "kp2"), ("subject0",))


@pytest.fixture(scope="module")
def classifier():
    tracks = _with_local_shapes(behaviour_tracks(["circling", "oscillating"] * 2, seed=1, name="train.mp4"))
    segments = [Segment("train.mp4", s, s + 89, label) for s, label in zip(range(0, 360, 90), ["circling", "oscillating"] * 2)]
    return fit_classifier(tracks, segments, config=CONFIG)


def _frame(tracks: Tracks, row: int) -> Detections:
    return Detections(tracks.keypoints[row], tracks.scores[row], tracks.jacobians[row], tracks.covariances[row])


def test_windows_are_due_once_full_and_then_every_stride(classifier) -> None:
    rolling = RollingWindow(classifier, 30.0, 3)
    assert (rolling.length, rolling.stride) == (30, 8)
    tracks = _with_local_shapes(behaviour_tracks(["circling"], seed=2, segment=80))
    due = [i for i in range(80) if rolling.add(i, _frame(tracks, i)) is not None]
    assert due == [29, 37, 45, 53, 61, 69, 77]
    with pytest.raises(FommError, match="came after"):
        rolling.add(5, _frame(tracks, 5))


def test_window_labels_equal_offline_classification_of_the_same_frames(classifier) -> None:
    """Every live window gets the probabilities offline ``predict_windows`` gives a tracks file of its frames."""
    tracks = _with_local_shapes(behaviour_tracks(["oscillating", "circling"], seed=3), seed=3)
    keep = np.ones(len(tracks.frame_indices), bool)
    keep[[40, 41, 100]] = False  # frames that never arrived
    rolling = RollingWindow(classifier, 30.0, 3)
    checked = 0
    for row in np.nonzero(keep)[0]:
        window = rolling.add(int(tracks.frame_indices[row]), _frame(tracks, row))
        if window is None:
            continue
        got = label_window(classifier, window)
        frames = np.arange(got.start, got.end)
        offline = tracks.select_frames(np.nonzero(keep & np.isin(tracks.frame_indices, frames))[0])
        expected = predict_windows(classifier, offline).probabilities[-1]
        probabilities = dict(got.ranked)
        np.testing.assert_allclose([probabilities[c] for c in classifier.classes], expected, atol=1e-6)
        assert [name for name, _ in got.ranked] == [classifier.classes[i] for i in np.argsort(-expected, kind="stable")]
        checked += 1
    assert checked >= 15


def test_labels_follow_the_behaviour(classifier) -> None:
    tracks = _with_local_shapes(behaviour_tracks(["circling", "oscillating"], seed=4), seed=4)
    rolling = RollingWindow(classifier, 30.0, 3)
    tops = {}
    for row in range(len(tracks.frame_indices)):
        window = rolling.add(row, _frame(tracks, row))
        if window is not None:
            tops[row] = label_window(classifier, window).top[0]
    assert tops[77] == "circling" and tops[173] == "oscillating"


def test_bouts_open_and_close_as_the_top_label_changes() -> None:
    bouts = BoutTracker(min_probability=0.6)
    a = WindowLabels(0, 30, 15, (("reach", 0.9), ("rest", 0.1)))
    b = WindowLabels(8, 38, 23, (("reach", 0.8), ("rest", 0.2)))
    c = WindowLabels(16, 46, 31, (("rest", 0.7), ("reach", 0.3)))
    d = WindowLabels(24, 54, 39, (("rest", 0.55), ("reach", 0.45)))
    assert [tuple(e) for e in bouts.update(a)] == [("open", "reach", 15, None)]
    assert bouts.update(b) == []
    assert [tuple(e) for e in bouts.update(c)] == [("close", "reach", 15, 31), ("open", "rest", 31, None)]
    assert [tuple(e) for e in bouts.update(d)] == [("close", "rest", 31, 39)]  # too unsure: no behaviour
    assert bouts.finish(60) == []
    bouts.update(a)
    assert [tuple(e) for e in bouts.finish(60)] == [("close", "reach", 15, 60)]


def test_keypoint_smoother_is_causal_and_restarts_after_a_gap() -> None:
    smooth = KeypointSmoother(0.5)
    np.testing.assert_allclose(smooth(np.array([[0.0, 0.0]])), [[0.0, 0.0]])
    np.testing.assert_allclose(smooth(np.array([[2.0, 4.0]])), [[1.0, 2.0]])
    assert np.isnan(smooth(np.array([[np.nan, np.nan]]))).all()
    np.testing.assert_allclose(smooth(np.array([[10.0, 10.0]])), [[10.0, 10.0]])
    with pytest.raises(FommError):
        KeypointSmoother(0.0)
