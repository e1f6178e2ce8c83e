"""Study scoring: bout statistics on hand-built label sequences, group comparison, reports, demo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fomm_kp.behaviour.classifiers import save_classifier
from fomm_kp.behaviour.fitting import fit_from_clips
from fomm_kp.behaviour.frame_labels import FrameLabels, bouts
from fomm_kp.behaviour.report import score, score_labels
from fomm_kp.behaviour.score import BehaviourStats, VideoScore, compare_groups, read_groups, score_video
from fomm_kp.errors import FommError
from fomm_kp.tracks import save_tracks

from conftest import behaviour_tracks

PNG = b"\x89PNG\r\n\x1a\n"


def labels_of(sequence: str, fps: float = 10.0, classes=("a", "b", "c"), first_frame: int = 0) -> FrameLabels:
    """FrameLabels from a string like ``"aab.c"`` ('.' = unknown)."""
    labels = np.array([classes.index(ch) if ch != "." else -1 for ch in sequence])
    probs = np.zeros((len(labels), len(classes)))
    probs[labels >= 0, labels[labels >= 0]] = 1.0
    probs[labels < 0] = np.nan
    return FrameLabels(np.arange(len(labels)) + first_frame, probs, labels, classes, fps, "v.mp4")


def test_bout_statistics_by_hand() -> None:
    #            0123456789012345
    result = labels_of("..aaabbaaaa.bbcc", fps=2.0)
    s = score_video(result)
    # 13 labelled frames; a: bouts 2-4 and 7-10 (7 frames), b: 5-6 and 12-13, c: 14-15
    a, b, c = s.behaviours["a"], s.behaviours["b"], s.behaviours["c"]
    assert s.frames == 13 and s.duration_s == 6.5
    assert (a.bouts, b.bouts, c.bouts) == (2, 2, 1)
    assert a.time_fraction == pytest.approx(7 / 13) and a.time_s == pytest.approx(3.5)
    assert a.time_fraction + b.time_fraction + c.time_fraction == pytest.approx(1.0)
    assert a.mean_bout_s == pytest.approx(3.5 / 2) and b.mean_bout_s == pytest.approx(1.0)
    # latency from the first labelled frame (frame 2)
    assert a.latency_s == 0.0 and b.latency_s == pytest.approx(1.5) and c.latency_s == pytest.approx(6.0)
    # transitions: a->b, b->a, a->b (across the unknown frame), b->c
    t = s.transitions
    assert t[0, 1] == 2 and t[1, 0] == 1 and t[1, 2] == 1 and t.sum() == 4


def test_absent_behaviour_and_runs() -> None:
    s = score_video(labels_of("aaaa"))
    assert s.behaviours["b"].bouts == 0 and np.isnan(s.behaviours["b"].latency_s) and np.isnan(s.behaviours["b"].mean_bout_s)
    assert s.behaviours["b"].time_fraction == 0.0
    assert bouts(np.array([1, 1, -1, 2])) == [(1, 0, 2), (-1, 2, 3), (2, 3, 4)]
    assert bouts(np.array([])) == []


def _score(name: str, fraction: float) -> VideoScore:
    stats = {"a": BehaviourStats(fraction, fraction * 10, 2, 1.0, 0.5), "b": BehaviourStats(1 - fraction, 10 - fraction * 10, 1, 2.0, np.nan)}
    return VideoScore(name, stats, np.zeros((2, 2), int), ("a", "b"), 100, 10.0)


def test_group_comparison_mann_whitney() -> None:
    scores = [_score(f"c{i}", f) for i, f in enumerate([0.6, 0.7, 0.8, 0.9])]
    scores += [_score(f"d{i}", f) for i, f in enumerate([0.1, 0.2, 0.3, 0.4])]
    groups = {**{f"c{i}": "control" for i in range(4)}, **{f"d{i}": "drug" for i in range(4)}}
    rows = compare_groups(scores, groups)
    row = next(r for r in rows if r["behaviour"] == "a" and r["metric"] == "time_fraction")
    assert row["group_a"] == "control" and row["n_a"] == 4 and row["n_b"] == 4
    assert row["U"] == 16.0 and row["rank_biserial"] == 1.0  # complete separation, control higher
    assert row["p"] == pytest.approx(0.0286, abs=1e-3)  # exact two-sided p for 4 vs 4
    assert row["p_holm"] >= row["p"]
    other = next(r for r in rows if r["behaviour"] == "b" and r["metric"] == "time_fraction")
    assert other["rank_biserial"] == -1.0
    tied = next(r for r in rows if r["behaviour"] == "a" and r["metric"] == "bouts")
    assert tied["p"] == 1.0 and tied["rank_biserial"] == 0.0
    latency = next(r for r in rows if r["behaviour"] == "b" and r["metric"] == "latency_s")
    assert latency["n_a"] == 0 and np.isnan(latency["p"])
    with pytest.raises(FommError, match="does not list"):
        compare_groups(scores, {"c0": "x"})
    with pytest.raises(FommError, match="at least 2 groups"):
        compare_groups(scores, {s.name: "one" for s in scores})


def test_score_labels_writes_report_and_plots(tmp_path: Path) -> None:
    results = {f"m{i}": labels_of("aaabbbccca"[i:] + "ab" * i) for i in range(4)}
    groups = tmp_path / "groups.csv"
    groups.write_text("video,group\n" + "".join(f"m{i}.mp4,{'x' if i < 2 else 'y'}\n" for i in range(4)))
    written = score_labels(results, tmp_path / "out", groups)
    files = [written.report_csv, written.report_json, written.time_budget, written.groups_csv, written.groups_boxplot,
             *written.ethograms.values(), *written.per_frame.values()]
    assert written.videos == ["m0", "m1", "m2", "m3"] and len(files) == 5 + 2 * 4
    for path in files:
        assert path.is_file(), path
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG
    report = json.loads(written.report_json.read_text())
    assert set(report["videos"]) == {"m0", "m1", "m2", "m3"}
    assert report["videos"]["m0"]["behaviours"]["a"]["bouts"] == 2
    assert report["videos"]["m0"]["transitions"]["a"] == {"b": 1}
    assert report["videos"]["m0"]["group"] == "x"
    lines = written.report_csv.read_text().splitlines()
    assert lines[0] == "video,group,behaviour,time_fraction,time_s,bouts,mean_bout_s,latency_s"
    assert len(lines) == 1 + 4 * 3
    assert read_groups(groups)["m2"] == "y"


def test_score_folder_of_tracks_and_frame_csvs(tmp_path: Path) -> None:
    clf = fit_from_clips({"circling": behaviour_tracks(["circling"], 1), "oscillating": behaviour_tracks(["oscillating"], 2)})
    clf_path = save_classifier(clf, tmp_path / "clf.npz")
    study = tmp_path / "study"
    study.mkdir()
    for i in range(3):
        kinds = ["circling", "oscillating"] if i % 2 else ["oscillating", "circling", "circling"]
        save_tracks(behaviour_tracks(kinds, seed=20 + i, name=f"s{i}.mp4"), study / f"s{i}.npz")
    written = score(study, tmp_path / "report", classifier=clf_path, min_bout_seconds=0.5)
    assert written.videos == ["s0", "s1", "s2"] and written.groups_csv is None
    report = json.loads(written.report_json.read_text())
    s1 = report["videos"]["s1"]["behaviours"]
    assert s1["circling"]["time_fraction"] == pytest.approx(0.5, abs=0.15)
    # the per-frame CSVs written above can themselves be scored without a classifier
    again = score(sorted((tmp_path / "report" / "per_frame").glob("*.csv")), tmp_path / "again")
    s1_again = json.loads(again.report_json.read_text())["videos"]["s1"]["behaviours"]
    for behaviour, stats in s1.items():
        for key, value in stats.items():
            assert s1_again[behaviour][key] == pytest.approx(value, rel=1e-6), (behaviour, key)
    with pytest.raises(FommError, match="classifier is needed"):
        score(study, tmp_path / "nope")
    with pytest.raises(FommError, match="not found"):
        score(tmp_path / "missing", tmp_path / "nope", classifier=clf_path)


def test_video_source_needs_a_checkpoint(tmp_path: Path) -> None:
    clf = fit_from_clips({"circling": behaviour_tracks(["circling"], 1), "oscillating": behaviour_tracks(["oscillating"], 2)})
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not really a video")
    with pytest.raises(FommError, match="checkpoint"):
        score([video], tmp_path / "out", classifier=clf)
