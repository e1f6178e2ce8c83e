"""Interactions between subjects: geometry with known answers, window features and graphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fomm_kp.behaviour.interactions import (
    InteractionConfig,
    interaction_features,
    interaction_graphs,
    interaction_signals,
    save_interaction_graphs,
)
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.errors import FommError
from fomm_kp.tracks import Tracks

FPS = 10.0


def _body(centre: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Three keypoints (tail, middle, head) 10 px apart along ``heading``: ``(T, 3, 2)``."""
    axis = np.stack([np.cos(heading), np.sin(heading)], axis=-1)
    return np.stack([centre - 10 * axis, centre, centre + 10 * axis], axis=1)


def _pair(frames: int = 40) -> Tracks:
    """Subject a stands at the origin facing +x; b walks along x from 200 towards it at 50 px/s,
    facing it (−x); from frame 30 on it stays 15 px away."""
    t = np.arange(frames)
    xb = np.maximum(200.0 - 5.0 * t, 50.0)
    a = _body(np.zeros((frames, 2)), np.zeros(frames))
    b = _body(np.stack([xb, np.zeros(frames)], axis=1), np.full(frames, np.pi))
    kp = np.stack([a, b], axis=1).astype(np.float32)
    return Tracks(kp, np.ones(kp.shape[:3]), t, FPS, keypoint_names=("tail", "middle", "head"), subject_names=("a", "b"))


CONFIG = FeatureConfig(window_seconds=(1.0,), stride_seconds=0.5, heading=("tail", "head"))


def test_pair_signals_have_the_known_values() -> None:
    tracks = _pair()
    signals = interaction_signals(tracks, CONFIG, InteractionConfig(contact_distance=35.0))
    (pair,) = signals.pairs
    xb = np.maximum(200.0 - 5.0 * np.arange(40), 50.0)
    np.testing.assert_allclose(pair.centroid_distance, xb, atol=1e-4)
    np.testing.assert_allclose(pair.nearest_distance, xb - 20.0, atol=1e-4)  # a's head to b's head
    assert pair.keypoint_distances.shape == (40, 3, 3)
    np.testing.assert_allclose(np.abs(pair.relative_heading), np.pi, atol=1e-6)  # opposite ways
    np.testing.assert_allclose(pair.facing, 0.0, atol=1e-6)  # each faces the other
    np.testing.assert_allclose(pair.approach_speed[3:25], 50.0, atol=1e-3)  # 5 px per frame at 10 fps
    np.testing.assert_allclose(pair.approach_speed[33:], 0.0, atol=1e-3)
    assert (pair.contact == (xb - 20.0 <= 35.0)).all()
    np.testing.assert_allclose(signals.speeds[3:25, 1], 50.0, atol=1e-3)


def test_facing_away_and_default_contact_distance() -> None:
    tracks = _pair()
    turned = tracks.keypoints.copy()
    turned[:, 1] = turned[:, 1, ::-1]  # b now faces +x: away from a
    away = Tracks(turned, tracks.scores, tracks.frame_indices, FPS, keypoint_names=tracks.keypoint_names,
                  subject_names=("a", "b"))
    signals = interaction_signals(away, CONFIG)
    np.testing.assert_allclose(signals.pairs[0].facing[:, 1], np.pi, atol=1e-6)
    assert signals.contact_distance == pytest.approx(0.25 * 20.0)  # a quarter of the 20-px body


def test_window_features_and_contact_time() -> None:
    features = interaction_features(_pair(), CONFIG, InteractionConfig(contact_distance=35.0))
    names = list(features.names)
    assert all(n.startswith("a~b.") and n.endswith("@1s") for n in names)
    seconds = features.values[:, names.index("a~b.contact.seconds@1s")]
    fraction = features.values[:, names.index("a~b.contact.fraction@1s")]
    np.testing.assert_allclose(seconds, fraction * 1.0, atol=1e-6)  # 1-s windows
    assert fraction[0] == 0 and fraction[-1] == 1  # far apart at first, in contact at the end
    approach = features.values[:, names.index("a~b.approach_speed.mean@1s")]
    assert approach[1] == pytest.approx(50.0, abs=0.5)


def test_three_subjects_give_three_pairs_and_graphs_networkx_reads(tmp_path: Path) -> None:
    networkx = pytest.importorskip("networkx")
    tracks = _pair()
    third = tracks.keypoints[:, :1] + np.float32([0, 100])
    kp = np.concatenate([tracks.keypoints, third], axis=1)
    kp[:12, 2] = np.nan  # the third subject appears after the first window
    three = Tracks(kp, np.ones(kp.shape[:3]), tracks.frame_indices, FPS, keypoint_names=tracks.keypoint_names,
                   subject_names=("a", "b", "c"))
    features = interaction_features(three, CONFIG)
    assert {n.split(".")[0] for n in features.names} == {"a~b", "a~c", "b~c"}
    graphs = interaction_graphs(three, CONFIG)
    assert len(graphs) == len(features.values)
    path = save_interaction_graphs(graphs, tmp_path / "g.json", "clip.mp4")
    loaded = json.loads(path.read_text())
    graph = networkx.node_link_graph(loaded["windows"][-1], edges="edges")
    assert sorted(graph.nodes) == ["a", "b", "c"] and graph.number_of_edges() == 3
    assert graph.edges["a", "c"]["centroid_distance.mean"] == pytest.approx(100.0, abs=1e-3)
    first = networkx.node_link_graph(loaded["windows"][0], edges="edges")
    assert first.nodes["c"]["x"] is None and first.edges["a", "c"]["centroid_distance.mean"] is None  # NaN: null
    assert first.nodes["a"]["x"] == pytest.approx(0.0, abs=1e-6)


def test_bad_input() -> None:
    one = Tracks(np.zeros((5, 1, 2, 2)), np.ones((5, 1, 2)), np.arange(5), FPS)
    with pytest.raises(FommError, match="two or more subjects"):
        interaction_features(one)
    with pytest.raises(FommError, match="interaction graphs are written as .json"):
        save_interaction_graphs([], "g.graphml")
    with pytest.raises(FommError, match="contact_distance"):
        InteractionConfig(contact_distance=-1.0)
    empty = Tracks(np.full((8, 2, 3, 2), np.nan), np.zeros((8, 2, 3)), np.arange(8), FPS)
    values = interaction_features(empty, FeatureConfig(window_seconds=(0.4,), stride_seconds=0.2)).values
    assert np.isnan(values[:, :8]).all()  # nothing present: no numbers, no crash
