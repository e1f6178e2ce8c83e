"""``fomm-kp features / fit / classify / score / motifs / evaluate behaviour``: one test per command,
bad inputs give one ``error:`` line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fomm_kp.behaviour.classifiers import load_classifier
from fomm_kp.behaviour.features import load_features
from fomm_kp.tracks import save_tracks

from conftest import SyntheticClip, assert_one_error_line, behaviour_tracks, run_cli


@pytest.fixture
def study(tmp_path: Path) -> dict[str, Path]:
    """Tracks of a labelled video, two example clips, two study videos and a labels CSV."""
    paths = {
        "train": save_tracks(behaviour_tracks(["circling", "oscillating"] * 2, seed=1, name="train.mp4"), tmp_path / "train.npz"),
        "circling": save_tracks(behaviour_tracks(["circling"], seed=2, name="c.mp4"), tmp_path / "c.npz"),
        "oscillating": save_tracks(behaviour_tracks(["oscillating"], seed=3, name="o.mp4"), tmp_path / "o.npz"),
    }
    folder = tmp_path / "study"
    for i in range(2):
        save_tracks(behaviour_tracks(["oscillating", "circling"], seed=10 + i, name=f"s{i}.mp4"), folder / f"s{i}.npz")
    paths["study"] = folder
    labels = tmp_path / "labels.csv"
    labels.write_text("video,start_frame,end_frame,label\ntrain,0,89,circling\ntrain,90,179,oscillating\ntrain,180,269,circling\n")
    paths["labels"] = labels
    return paths


def test_features_command(tmp_path: Path, study, capsys, monkeypatch) -> None:
    out = tmp_path / "f.npz"
    code, stdout, err = run_cli(["features", str(study["train"]), "--out", str(out), "--window", "0.5", "--window", "1",
                                 "--spectrogram", str(tmp_path / "s.png")], capsys, monkeypatch)
    assert code == 0, err
    feats = load_features(out)
    assert feats.num_windows > 10 and any(n.endswith("@1s") for n in feats.names)
    assert "windows" in err and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_fit_and_classify_commands(tmp_path: Path, study, capsys, monkeypatch) -> None:
    clf_path = tmp_path / "clf.npz"
    code, stdout, err = run_cli(["fit", str(study["train"]), "--labels", str(study["labels"]), "--kind", "logistic",
                                 "--out", str(clf_path)], capsys, monkeypatch)
    assert code == 0, err
    assert load_classifier(clf_path).classes == ("circling", "oscillating")
    per_frame = tmp_path / "frames.csv"
    code, stdout, err = run_cli(["classify", str(study["study"] / "s0.npz"), "--classifier", str(clf_path),
                                 "--per-frame", str(per_frame), "--min-bout", "0.5"], capsys, monkeypatch)
    assert code == 0, err
    assert stdout.index("circling") > 0 and stdout.index("oscillating") > 0
    lines = per_frame.read_text().splitlines()
    assert lines[0] == "frame,time_s,label,p_circling,p_oscillating" and len(lines) == 1 + 180
    # example clips instead of segments
    code, _, err = run_cli(["fit", "--clip", f"circling={study['circling']}", "--clip", f"oscillating={study['oscillating']}",
                            "--out", str(tmp_path / "clf2.npz")], capsys, monkeypatch)
    assert code == 0, err


def test_score_command(tmp_path: Path, study, capsys, monkeypatch) -> None:
    clf = tmp_path / "clf.npz"
    run_cli(["fit", str(study["train"]), "--labels", str(study["labels"]), "--out", str(clf)], capsys, monkeypatch)
    groups = tmp_path / "groups.csv"
    groups.write_text("video,group\ns0,a\ns1,b\n")
    out = tmp_path / "report"
    code, stdout, err = run_cli(["score", str(study["study"]), "--classifier", str(clf), "--groups", str(groups),
                                 "--out", str(out)], capsys, monkeypatch)
    assert code == 0, err
    assert {"report.csv", "report.json", "time_budget.png", "groups.csv", "groups_boxplot.png", "ethograms/s0.png"} <= {
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()
    }
    assert set(json.loads((out / "report.json").read_text())["videos"]) == {"s0", "s1"}


def test_motifs_command(tmp_path: Path, study, capsys, monkeypatch) -> None:
    out = tmp_path / "motifs"
    code, stdout, err = run_cli(["motifs", str(study["train"]), "--out", str(out), "--k-max", "3", "--no-clips"], capsys, monkeypatch)
    assert code == 0, err
    assert (out / "motifs.csv").is_file() and load_classifier(out / "motifs_classifier.npz").kind == "prototype"


def test_bad_inputs_give_one_error_line(tmp_path: Path, study, capsys, monkeypatch) -> None:
    code, _, err = run_cli(["features", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "f.npz")], capsys, monkeypatch)
    assert_one_error_line(code, err, "not found")
    code, _, err = run_cli(["fit", str(study["train"]), "--out", str(tmp_path / "never.npz")], capsys, monkeypatch)
    assert_one_error_line(code, err, "--labels")
    code, _, err = run_cli(["fit", "--clip", "nolabel", "--out", str(tmp_path / "never.npz")], capsys, monkeypatch)
    assert_one_error_line(code, err, "LABEL=FILE")
    code, _, err = run_cli(["classify", str(study["train"]), "--classifier", str(study["labels"])], capsys, monkeypatch)
    assert_one_error_line(code, err, "classifier")
    assert not (tmp_path / "never.npz").exists()


def test_classify_video_needs_checkpoint(tmp_path: Path, disc_clip: SyntheticClip, study, capsys, monkeypatch) -> None:
    clf = tmp_path / "clf.npz"
    run_cli(["fit", str(study["train"]), "--labels", str(study["labels"]), "--out", str(clf)], capsys, monkeypatch)
    code, _, err = run_cli(["classify", str(disc_clip.path), "--classifier", str(clf)], capsys, monkeypatch)
    assert_one_error_line(code, err, "--checkpoint")


@pytest.mark.slow
def test_classify_and_score_a_video_with_a_checkpoint(tmp_path: Path, disc_clip: SyntheticClip, trained_checkpoint: Path,
                                                      capsys, monkeypatch) -> None:
    """A video source is tracked with the detector first (fomm_kp.api.track), then labelled."""
    from fomm_kp import api
    from fomm_kp.behaviour.classifiers import save_classifier
    from fomm_kp.behaviour.fitting import fit_classifier
    from fomm_kp.behaviour.windows import FeatureConfig

    tracks = api.track(disc_clip.path, api.load_model(trained_checkpoint))
    labels = tmp_path / "labels.csv"
    labels.write_text(f"video,start_frame,end_frame,label\n{disc_clip.path.name},0,11,first\n{disc_clip.path.name},12,23,second\n")
    clf = fit_classifier(tracks, labels, config=FeatureConfig(window_seconds=(0.5,), stride_seconds=0.2))
    clf_path = save_classifier(clf, tmp_path / "clf.npz")
    code, stdout, err = run_cli(["classify", str(disc_clip.path), "--classifier", str(clf_path), "--checkpoint", str(trained_checkpoint),
                                 "--per-frame", str(tmp_path / "f.csv")], capsys, monkeypatch)
    assert code == 0, err
    assert "first" in stdout and "second" in stdout
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 1 + 24
    code, _, err = run_cli(["score", str(disc_clip.path), "--classifier", str(clf_path), "--checkpoint", str(trained_checkpoint),
                            "--out", str(tmp_path / "report")], capsys, monkeypatch)
    assert code == 0, err
    assert (tmp_path / "report" / "ethograms" / "disc.png").is_file()
