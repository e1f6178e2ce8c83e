"""The files we write, read by the field's own tools with their default arguments: ``movement``
(DeepLabCut CSV/H5, SLEAP, NWB), ``sleap-io`` (SLEAP), pandas (DeepLabCut H5), and checked by
``nwbinspector``. N individuals and the same coordinates come back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fomm_kp.errors import FommError
from fomm_kp.tracks import Tracks, load_tracks, save_tracks
from fomm_kp.tracks.nwb import NwbSubject, nwb_paths

pytest.importorskip("sleap_io")
pytest.importorskip("pynwb")


def _tracks(subjects: int, rng: np.random.Generator, stride: int = 1) -> Tracks:
    """``subjects`` subjects, 3 keypoints, 20 frames at 25 fps (every ``stride``-th), one subject
    missing for a few frames and one keypoint missing once."""
    kp = rng.uniform(0, 300, (20, subjects, 3, 2)).astype(np.float32)
    kp[6:9, subjects - 1] = np.nan
    kp[2, 0, 1] = np.nan
    scores = np.where(np.isnan(kp[..., 0]), 0.0, rng.uniform(0.2, 1.0, kp.shape[:3])).astype(np.float32)
    names = tuple(f"fly{i}" for i in range(subjects))
    return Tracks(kp, scores, np.arange(20) * stride + 3, 25.0, video="pair.mp4",
                  keypoint_names=("head", "thorax", "abdomen"), subject_names=names)


def _movement_array(ds, keypoints: tuple[str, ...] = ("head", "thorax", "abdomen")) -> np.ndarray:
    """movement's position ``(time, space, keypoints, individuals)`` as our ``(T, N, K, 2)``."""
    return ds.position.sel(keypoints=list(keypoints)).transpose("time", "individuals", "keypoints", "space").values


@pytest.mark.parametrize("subjects", [1, 2, 3])
@pytest.mark.parametrize("suffix", [".csv", ".h5"])
def test_movement_loads_our_deeplabcut_files(tmp_path: Path, rng: np.random.Generator, subjects: int, suffix: str) -> None:
    load_poses = pytest.importorskip("movement.io.load_poses")
    tracks = _tracks(subjects, rng)
    path = save_tracks(tracks, tmp_path / f"t{suffix}")
    ds = load_poses.from_dlc_file(path)
    assert ds.sizes["individuals"] == subjects and ds.sizes["keypoints"] == 3 and ds.sizes["time"] == 20
    if subjects > 1:
        assert [str(n) for n in ds.individuals.values] == list(tracks.subject_names)
    np.testing.assert_allclose(_movement_array(ds), tracks.keypoints, atol=1e-3)  # NaN where ours are NaN
    back = load_tracks(path)  # and our own reader (h5py for .h5, nothing unpickled) agrees
    np.testing.assert_allclose(back.keypoints, tracks.keypoints, atol=1e-3)
    assert back.subject_names == (tracks.subject_names if subjects > 1 else ("subject0",))


def test_deeplabcut_h5_is_the_pandas_table_deeplabcut_writes(tmp_path: Path, rng: np.random.Generator) -> None:
    import h5py
    import pandas as pd

    tracks = _tracks(2, rng)
    path = save_tracks(tracks, tmp_path / "t.h5")
    frame = pd.read_hdf(path, "df_with_missing")
    assert list(frame.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert frame.shape == (20, 2 * 3 * 3) and frame.index.tolist() == tracks.frame_indices.tolist()
    assert frame[("fomm_kp", "fly1", "abdomen", "likelihood")].to_numpy().tolist() == tracks.scores[:, 1, 2].tolist()
    with h5py.File(path, "r") as handle:  # no object (pickled) columns: every dataset holds numbers
        kinds = []
        handle.visititems(lambda name, node: kinds.append(node.dtype.kind) if isinstance(node, h5py.Dataset) else None)
        table = handle["df_with_missing/table"]
        kinds += [table.dtype[field].kind for field in table.dtype.names]
    assert kinds and "O" not in kinds


@pytest.mark.parametrize("subjects", [1, 2])
def test_sleap_files_load_in_sleap_io_and_movement(tmp_path: Path, rng: np.random.Generator, subjects: int) -> None:
    import sleap_io as sio

    tracks = _tracks(subjects, rng, stride=2)
    path = save_tracks(tracks, tmp_path / "t.slp")
    labels = sio.load_slp(str(path))
    assert [t.name for t in labels.tracks] == list(tracks.subject_names)
    array = labels.numpy()  # (frames of the video, tracks, nodes, 2), indexed by frame number
    np.testing.assert_allclose(array[tracks.frame_indices], tracks.keypoints, atol=1e-4)
    load_poses = pytest.importorskip("movement.io.load_poses")
    ds = load_poses.from_sleap_file(path)
    assert ds.sizes["individuals"] == subjects
    np.testing.assert_allclose(_movement_array(ds)[tracks.frame_indices], tracks.keypoints, atol=1e-4)


@pytest.mark.parametrize("subjects", [1, 3])
def test_movement_loads_one_nwb_file_per_subject(tmp_path: Path, rng: np.random.Generator, subjects: int) -> None:
    load_poses = pytest.importorskip("movement.io.load_poses")
    xr = pytest.importorskip("xarray")
    tracks = _tracks(subjects, rng, stride=2)
    save_tracks(tracks, tmp_path / "t.nwb", NwbSubject(("f",), species="Drosophila melanogaster"))
    datasets = [load_poses.from_nwb_file(path) for path in nwb_paths(tmp_path / "t.nwb", tracks.subject_names)]
    assert all(ds.sizes["individuals"] == 1 for ds in datasets)  # movement: one subject per NWB file
    merged = xr.merge(datasets, join="outer", compat="no_conflicts")
    assert merged.sizes["individuals"] == subjects and merged.attrs["fps"] == pytest.approx(12.5)
    names = [str(n) for n in merged.individuals.values]
    expected = ["f"] if subjects == 1 else [f"f_{n}" for n in tracks.subject_names]
    assert [n.rsplit("-", 5)[0] for n in names] == expected  # identifier: <subject id>-<uuid4>
    times = np.round(merged.time.values * 12.5).astype(int)  # rows: movement counts time from the first one
    np.testing.assert_allclose(_movement_array(merged)[times], tracks.keypoints, atol=1e-4)


def _inspect(folder: Path) -> list:
    inspector = pytest.importorskip("nwbinspector")
    return [m for m in inspector.inspect_all(path=str(folder))
            if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION", "PYNWB_VALIDATION", "ERROR")]


def test_nwbinspector_finds_no_critical_issue_nor_violation(tmp_path: Path, rng: np.random.Generator) -> None:
    one = _tracks(1, rng)
    save_tracks(one, tmp_path / "one.nwb")  # placeholders for the subject
    save_tracks(_tracks(2, rng, stride=3), tmp_path / "pair.nwb", NwbSubject(("a", "b"), "Mus musculus", "F", "P8W"))
    irregular = Tracks(one.keypoints[:5], one.scores[:5], [0, 1, 4, 5, 9], 25.0)  # timestamps, not a rate
    save_tracks(irregular, tmp_path / "irregular.nwb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["irregular.nwb", "one.nwb", "pair_fly0.nwb", "pair_fly1.nwb"]
    messages = _inspect(tmp_path)
    assert messages == [], [(m.check_function_name, m.message) for m in messages]
    back = load_tracks(tmp_path / "irregular.nwb")
    assert back.frame_indices.tolist() == [0, 1, 4, 5, 9]


def test_subject_metadata_is_checked() -> None:
    with pytest.raises(FommError, match="sex must be"):
        NwbSubject(sex="male")
    with pytest.raises(FommError, match="must not contain '/'"):
        NwbSubject(("a/b",))
    with pytest.raises(FommError, match="2 subject ids for 3 subjects"):
        NwbSubject(("a", "b")).ids(["x", "y", "z"])
