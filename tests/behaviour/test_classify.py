"""Few-shot classifiers, window labels, overlap averaging, minimum bouts, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fomm_kp.behaviour.classifiers import ClassifierOptions, load_classifier, save_classifier
from fomm_kp.behaviour.features import motion_features
from fomm_kp.behaviour.fitting import fit_classifier, fit_from_clips
from fomm_kp.behaviour.frame_labels import (
    FrameLabels,
    classify,
    enforce_min_bout,
    frame_probabilities,
    predict_windows,
    rank_labels,
)
from fomm_kp.behaviour.segments import Segment, read_segments, window_labels
from fomm_kp.errors import FommError

from conftest import behaviour_tracks


def truth_of(kinds: list[str], segment: int = 90) -> np.ndarray:
    return np.repeat(kinds, segment)


def accuracy_away_from_joins(result, kinds: list[str], segment: int = 90, margin: int = 30) -> float:
    """Frame accuracy, leaving out frames within ``margin`` of a join between synthetic segments
    (the bodies jump there, and 2-s windows straddle two behaviours)."""
    truth = truth_of(kinds, segment)[result.frame_indices]
    offset = result.frame_indices % segment
    far = (offset >= margin) & (offset < segment - margin) | (result.frame_indices < segment - margin)
    return float(np.mean((np.array(result.label_names) == truth)[far]))


TEST_KINDS = ["oscillating", "circling", "circling", "oscillating", "circling", "oscillating"]


@pytest.mark.parametrize("kind", ["prototype", "knn", "logistic"])
def test_two_examples_each_separate_circling_from_oscillating(kind: str) -> None:
    clips = [("circling", behaviour_tracks(["circling"], seed)) for seed in (1, 2)]
    clips += [("oscillating", behaviour_tracks(["oscillating"], seed)) for seed in (3, 4)]
    clf = fit_from_clips(clips, kind=kind)
    assert clf.classes == ("circling", "oscillating")
    test = behaviour_tracks(TEST_KINDS, seed=10)
    result = classify(test, clf)
    accuracy = accuracy_away_from_joins(result, TEST_KINDS)
    assert accuracy > 0.95, accuracy
    # everything, joins included, is still mostly right
    assert np.mean(np.array(result.label_names) == truth_of(TEST_KINDS)[result.frame_indices]) > 0.75


@pytest.mark.slow
def test_temporal_model_separates_circling_from_oscillating() -> None:
    train = behaviour_tracks(["circling", "oscillating"] * 2, seed=5, name="train.mp4")
    segments = [Segment("train", 90 * i, 90 * i + 89, ["circling", "oscillating"][i % 2]) for i in range(4)]
    clf = fit_classifier(train, segments, kind="temporal", options=ClassifierOptions(temporal_steps=200))
    result = classify(behaviour_tracks(TEST_KINDS, seed=11), clf)
    accuracy = accuracy_away_from_joins(result, TEST_KINDS)
    assert accuracy > 0.85, accuracy


def test_fit_from_segments_csv_matches_videos_by_name(tmp_path: Path) -> None:
    a = behaviour_tracks(["circling", "oscillating"], seed=1, name="/data/a.mp4")
    b = behaviour_tracks(["oscillating", "circling"], seed=2, name="/data/b.mp4")
    labels = tmp_path / "labels.csv"
    labels.write_text("video,start_frame,end_frame,label\na.mp4,0,89,circling\na,90,179,oscillating\nb.avi,0,89,oscillating\n")
    clf = fit_classifier([a, b], labels, kind="prototype")
    assert clf.classes == ("circling", "oscillating")
    result = classify(b, clf)
    assert accuracy_away_from_joins(result, ["oscillating", "circling"]) > 0.95
    with pytest.raises(FommError, match="no labelled segment names a given video"):
        fit_classifier([behaviour_tracks(["circling"], 3, name="c.mp4")], labels)


def test_window_labels_need_half_of_the_window() -> None:
    segments = [Segment("v", 10, 19, "a"), Segment("v", 20, 29, "b")]
    starts = np.array([0, 5, 6, 10, 15, 16, 25, 28])
    labels = window_labels(starts, starts + 10, segments)
    # [5, 15) is half in "a"; [15, 25) is half each (ties go to the first name); [28, 38) 2/10 in "b"
    assert labels.tolist() == ["", "a", "a", "a", "a", "b", "b", ""]


def test_read_segments_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("video,start,end,label\nv,1,2,a\n")
    with pytest.raises(FommError, match="must have columns"):
        read_segments(bad)
    bad.write_text("video,start_frame,end_frame,label\nv,5,2,a\n")
    with pytest.raises(FommError, match="bad segment"):
        read_segments(bad)
    bad.write_text("video,start_frame,end_frame,label\nv,x,2,a\n")
    with pytest.raises(FommError, match="integers"):
        read_segments(bad)
    with pytest.raises(FommError, match="not found"):
        read_segments(tmp_path / "missing.csv")


def test_one_behaviour_is_not_enough() -> None:
    with pytest.raises(FommError, match="at least 2 behaviours"):
        fit_from_clips({"circling": behaviour_tracks(["circling"], 1)})
    with pytest.raises(FommError, match="unknown classifier kind"):
        fit_from_clips({"a": behaviour_tracks(["circling"], 1), "b": behaviour_tracks(["oscillating"], 2)}, kind="svm")


def test_overlap_averaging_by_hand() -> None:
    # windows over frames 0-3, 2-5, 4-7 with known probabilities
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    starts, ends = np.array([0, 2, 4]), np.array([4, 6, 8])
    out = frame_probabilities(probs, starts, ends, np.arange(10))
    expected = np.array([[1, 0], [1, 0], [0.5, 0.5], [0.5, 0.5], [0.25, 0.75], [0.25, 0.75], [0.5, 0.5], [0.5, 0.5]])
    assert np.allclose(out[:8], expected)
    assert np.all(np.isnan(out[8:]))  # frames no window covers
    # strided frame grids: only the listed frames are labelled
    out2 = frame_probabilities(probs, starts, ends, np.array([0, 2, 4, 6]))
    assert np.allclose(out2, expected[[0, 2, 4, 6]])


def test_min_bout_merges_short_bouts_into_the_more_probable_neighbour() -> None:
    labels = np.array([0, 0, 0, 0, 1, 0, 0, 0, 2, 2, 1, 1, 1, 1, -1, -1, 2, 1, 1, 1])
    probs = np.full((20, 3), 0.1)
    probs[8:10, 1] = 0.6  # the short "2" bout at 8-9 looks more like its right neighbour (1)
    probs[16, 1] = 0.5
    out = enforce_min_bout(labels, probs, min_frames=3)
    assert out.tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, -1, -1, 1, 1, 1, 1]
    assert enforce_min_bout(labels, probs, 1).tolist() == labels.tolist()
    assert enforce_min_bout(np.array([2, 2]), probs[:2], 5).tolist() == [2, 2]  # a lone bout stays


@pytest.mark.parametrize("kind", ["prototype", "knn", "logistic", "temporal"])
def test_classifier_save_load_round_trip(tmp_path: Path, kind: str) -> None:
    clips = {"circling": [behaviour_tracks(["circling"], 1)], "oscillating": [behaviour_tracks(["oscillating"], 2)]}
    clf = fit_from_clips(clips, kind=kind, options=ClassifierOptions(temporal_steps=5))
    path = save_classifier(clf, tmp_path / "clf.npz")
    back = load_classifier(path)
    assert back.kind == kind and back.classes == clf.classes and back.feature_config == clf.feature_config
    test = behaviour_tracks(["oscillating", "circling"], 3)
    p1, s1, e1 = predict_windows(clf, test)
    p2, s2, e2 = predict_windows(back, test)
    assert np.allclose(p1, p2, atol=1e-6) and np.array_equal(s1, s2) and np.array_equal(e1, e2)
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert all(data[k].dtype != object for k in data.files)


def test_loading_something_else_fails(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", a=np.zeros(2))
    with pytest.raises(FommError, match="not a fomm_kp classifier"):
        load_classifier(tmp_path / "x.npz")
    with pytest.raises(FommError, match="not found"):
        load_classifier(tmp_path / "missing.npz")


def test_features_input_and_column_check() -> None:
    clips = {"circling": behaviour_tracks(["circling"], 1), "oscillating": behaviour_tracks(["oscillating"], 2)}
    clf = fit_from_clips(clips, kind="prototype")
    feats = motion_features(behaviour_tracks(["circling"], 3), _config_of(clf))
    assert classify(feats, clf).probabilities.shape[1] == 2
    with pytest.raises(FommError, match="lack"):
        classify(feats.select(slice(None)).__class__(feats.values[:, :5], feats.names[:5], feats.start_frames,
                                                      feats.end_frames, feats.fps), clf)


def _config_of(clf):
    from fomm_kp.behaviour.windows import FeatureConfig

    return FeatureConfig.from_dict(clf.feature_config)


def test_frame_labels_csv_round_trip_and_ranking(tmp_path: Path) -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [np.nan, np.nan]])
    result = FrameLabels(np.arange(4) + 10, probs, np.array([0, 0, 1, -1]), ("a", "b"), 15.0, "v.mp4")
    back = FrameLabels.from_csv(result.to_csv(tmp_path / "f.csv"))
    assert back.classes == ("a", "b") and back.label_names == ["a", "a", "b", ""]
    assert np.allclose(back.probabilities, result.probabilities, equal_nan=True, atol=1e-4)
    assert abs(back.fps - 15.0) < 1e-3
    ranked = rank_labels(result)
    assert [r[0] for r in ranked] == ["a", "b"]
    assert ranked[0][2] == pytest.approx(2 / 3)
    plain = tmp_path / "plain.csv"
    plain.write_text("frame,label\n0,x\n1,y\n2,\n")
    p = FrameLabels.from_csv(plain, fps=10.0)
    assert p.classes == ("x", "y") and p.labels.tolist() == [0, 1, -1]
