"""Import/export round trips: DeepLabCut CSV/H5, SLEAP .slp, NWB; missing optional packages."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from fomm_kp.errors import FommError
from fomm_kp.tracks import Tracks, load_tracks, save_tracks
from fomm_kp.tracks.core import DEFAULT_FPS
from fomm_kp.tracks.dlc import load_dlc
from fomm_kp.tracks.nwb import load_nwb_subjects, nwb_paths
from fomm_kp.tracks.sleap import load_sleap


@pytest.fixture
def tracks(rng: np.random.Generator) -> Tracks:
    """Two subjects, three keypoints, every second frame of a 25 fps video, some points missing."""
    kp = rng.uniform(0, 300, (12, 2, 3, 2)).astype(np.float32)
    kp[3, 0, 1] = np.nan
    kp[5, 1] = np.nan
    scores = rng.uniform(0.2, 1.0, (12, 2, 3)).astype(np.float32)
    scores[np.isnan(kp[..., 0])] = 0.0
    return Tracks(kp, scores, np.arange(12) * 2 + 7, 25.0, video="clip.mp4", keypoint_names=("nose", "ear", "tail"),
                  subject_names=("m1", "m2"))


def assert_same(a: Tracks, b: Tracks, atol: float = 1e-3, fps: bool = True) -> None:
    assert a.keypoints.shape == b.keypoints.shape
    assert np.array_equal(np.isnan(a.keypoints), np.isnan(b.keypoints))
    assert np.allclose(a.keypoints, b.keypoints, atol=atol, equal_nan=True)
    assert np.allclose(a.scores, b.scores, atol=1e-3)
    assert np.array_equal(a.frame_indices, b.frame_indices)
    assert a.keypoint_names == b.keypoint_names and a.subject_names == b.subject_names
    if fps:
        assert a.fps == pytest.approx(b.fps)


def test_dlc_csv_round_trip(tmp_path: Path, tracks: Tracks) -> None:
    back = load_dlc(save_tracks(tracks, tmp_path / "t.csv"), fps=25.0)
    assert_same(tracks, back)
    assert load_tracks(tmp_path / "t.csv").fps == DEFAULT_FPS  # no rate in DLC files


def test_dlc_single_animal_labelled_data_csv(tmp_path: Path) -> None:
    path = tmp_path / "CollectedData_me.csv"
    path.write_text(
        "scorer,me,me,me,me\nbodyparts,snout,snout,tail,tail\ncoords,x,y,x,y\n"
        "labeled-data/s/img0003.png,1.5,2.5,,\nlabeled-data/s/img0007.png,3,4,5,6\n"
    )
    t = load_tracks(path)
    assert t.keypoints.shape == (2, 1, 2, 2) and t.keypoint_names == ("snout", "tail")
    assert t.frame_indices.tolist() == [0, 1]  # image counters are not frame numbers
    assert np.isnan(t.keypoints[0, 0, 1]).all() and t.scores[0, 0].tolist() == [1.0, 0.0]
    assert t.keypoints[1, 0, 1].tolist() == [5.0, 6.0]


def test_dlc_h5_round_trip(tmp_path: Path, tracks: Tracks) -> None:
    pytest.importorskip("tables")
    import pandas as pd

    csv_path = save_tracks(tracks, tmp_path / "t.csv")
    df = pd.read_csv(csv_path, header=[0, 1, 2, 3], index_col=0)
    df.to_hdf(tmp_path / "t.h5", key="df_with_missing", mode="w")
    assert_same(tracks, load_dlc(tmp_path / "t.h5", fps=25.0))


def test_sleap_round_trip(tmp_path: Path, tracks: Tracks) -> None:
    pytest.importorskip("sleap_io")
    back = load_tracks(save_tracks(tracks, tmp_path / "t.slp"))
    assert_same(tracks, back, atol=1e-4)
    assert back.video == "clip.mp4"


def test_nwb_round_trip(tmp_path: Path, tracks: Tracks) -> None:
    pytest.importorskip("pynwb")
    pytest.importorskip("ndx_pose")
    first = save_tracks(tracks, tmp_path / "t.nwb")  # one file per subject: t_m1.nwb, t_m2.nwb
    paths = nwb_paths(tmp_path / "t.nwb", tracks.subject_names)
    assert first == paths[0] and [p.name for p in paths] == ["t_m1.nwb", "t_m2.nwb"] and all(p.is_file() for p in paths)
    assert not (tmp_path / "t.nwb").exists()
    back = load_nwb_subjects(paths)
    assert_same(tracks, back, atol=1e-4)  # 12.5 rows/s (25 fps, every 2nd frame) survives
    one = load_tracks(paths[1])
    present = ~np.isnan(tracks.keypoints[:, 1]).all(axis=(1, 2))  # frames without the subject are left out
    assert one.subject_names == ("m2",) and np.array_equal(one.frame_indices, tracks.frame_indices[present])
    np.testing.assert_allclose(one.keypoints[:, 0], tracks.keypoints[present, 1], atol=1e-4)


def test_missing_optional_package_names_the_extra(tmp_path: Path, tracks: Tracks, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str, *args, **kwargs):
        if name == "sleap_io":
            raise ImportError("No module named 'sleap_io'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(FommError, match=r'pip install "fomm_kp\[interop\]"'):
        save_tracks(tracks, tmp_path / "t.slp")
    assert not (tmp_path / "t.slp").exists()


def test_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("frame,label\n0,a\n")
    with pytest.raises(FommError, match="not a DeepLabCut CSV"):
        load_tracks(path)
    with pytest.raises(FommError, match="not found"):
        load_tracks(tmp_path / "missing.slp")
    with pytest.raises(FommError, match="cannot write tracks as '.json'"):
        save_tracks(Tracks(np.zeros((1, 1, 1, 2)), np.ones((1, 1, 1)), [0], 30.0), tmp_path / "t.json")
    path.write_text("scorer,me,me\nbodyparts,snout,snout\ncoords,x,y\n0,1.5,oops\n")
    with pytest.raises(FommError, match="not a number"):
        load_tracks(path)


def test_real_dlc_csv_and_h5_agree(shared_data: Path) -> None:
    pytest.importorskip("tables")
    folder = shared_data / "dlc-openfield" / "labeled-data" / "m4s1"
    a = load_tracks(folder / "CollectedData_Pranav.csv")
    b = load_tracks(folder / "CollectedData_Pranav.h5")
    assert a.keypoints.shape == (116, 1, 4, 2)
    assert a.keypoint_names == ("snout", "leftear", "rightear", "tailbase")
    assert_same(a, b, atol=1e-6)
    assert 0 < np.nanmin(a.keypoints[..., 0]) and np.nanmax(a.keypoints[..., 0]) < 640


def test_real_sleap_predictions(shared_data: Path) -> None:
    pytest.importorskip("sleap_io")
    t = load_sleap(shared_data / "sleap-fly-centered" / "centered_pair_predictions.slp", fps=15.0)
    assert t.keypoints.shape == (1100, 27, 24, 2) and t.keypoint_names[0] == "head"
    assert t.scores.max() <= 1.0 and np.isfinite(t.keypoints).any()
    dance = load_sleap(shared_data / "sleap-dance" / "dance.mp4.labels.slp", fps=30.0)
    assert dance.keypoints.shape[2] == 17 and dance.num_frames == 450
