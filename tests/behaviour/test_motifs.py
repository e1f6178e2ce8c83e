"""Unsupervised motifs: two clearly different behaviours come out as two motifs, with example clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fomm_kp.behaviour.features import motion_features
from fomm_kp.behaviour.frame_labels import classify
from fomm_kp.behaviour.motifs import find_motifs, write_motif_examples
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.errors import FommError
from fomm_kp.video import VideoWriter, probe

from conftest import behaviour_tracks

CONFIG = FeatureConfig(window_seconds=(1.0,), stride_seconds=0.25)


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_two_behaviours_give_two_motifs(method: str) -> None:
    kinds = ["circling", "oscillating"] * 3
    tracks = behaviour_tracks(kinds, seed=4, segment=120)
    feats = motion_features(tracks, CONFIG)
    motifs = find_motifs(feats, k_range=(2, 5), method=method)
    truth = np.repeat(kinds, 120)[(feats.start_frames + feats.end_frames) // 2]
    inner = (feats.start_frames % 120 >= 30) & (feats.start_frames % 120 < 60)  # windows well inside a segment
    # the jumps between synthetic segments may earn a motif of their own, so k is 2 or a little more
    assert sorted(motifs.criterion) == [2, 3, 4, 5] and 2 <= motifs.k <= 3
    # each behaviour falls (almost) entirely in one motif, and the two use different motifs
    majority = {}
    for kind in ("circling", "oscillating"):
        labels = motifs.labels[inner & (truth == kind)]
        values, counts = np.unique(labels, return_counts=True)
        majority[kind] = values[np.argmax(counts)]
        assert counts.max() / counts.sum() > 0.9
    assert majority["circling"] != majority["oscillating"]
    # the motifs become a classifier that labels new tracks the same way
    clf = motifs.to_classifier()
    result = classify(behaviour_tracks(["oscillating", "circling"], seed=9, segment=120), clf)
    assert result.labels[30:90].tolist().count(int(majority["oscillating"])) > 50


def test_motif_examples(tmp_path: Path) -> None:
    tracks = behaviour_tracks(["circling", "oscillating"], seed=1, segment=60, name=str(tmp_path / "v.mp4"))
    with VideoWriter(tmp_path / "v.mp4", fps=30.0) as writer:
        for i in range(120):
            frame = np.full((32, 48, 3), 40, np.uint8)
            frame[8:24, (i % 40) : (i % 40) + 8] = 220
            writer.write(frame)
    feats = motion_features(tracks, CONFIG)
    motifs = find_motifs(feats, k_range=(2, 3))
    written = write_motif_examples(motifs, feats, tmp_path / "motifs", per_motif=2)
    lines = written["motifs_csv"].read_text().splitlines()
    assert lines[0] == "video,start_frame,end_frame,motif,distance" and len(lines) == 1 + feats.num_windows
    clips = [p for k, p in written.items() if k.startswith("motif:")]
    assert len(clips) == motifs.k
    for clip in clips:
        info = probe(clip)
        assert info.num_frames >= 30  # two 1-s examples (30 frames each) and gaps, or one if they overlap
    only_table = write_motif_examples(motifs, feats, tmp_path / "t", write_clips=False)
    assert set(only_table) == {"motifs_csv", "classifier"}
    assert not (tmp_path / "m2").exists() and not list(tmp_path.glob(".m2*"))  # a failure leaves nothing
    feats_missing = motion_features(behaviour_tracks(["circling", "oscillating"], 1, 60, name="gone.mp4"), CONFIG)
    with pytest.raises(FommError, match="not found"):
        write_motif_examples(find_motifs(feats_missing, (2, 3)), feats_missing, tmp_path / "m2")


def test_bad_motif_requests() -> None:
    feats = motion_features(behaviour_tracks(["circling"], seed=1, segment=30), CONFIG)
    with pytest.raises(FommError, match="too few"):
        find_motifs(feats, k_range=(2, 40))
    with pytest.raises(FommError, match="unknown motif method"):
        find_motifs(feats, method="dbscan")
    with pytest.raises(FommError, match="k_range"):
        find_motifs(feats, k_range=(1, 3))
