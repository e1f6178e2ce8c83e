"""The Tracks type: validation, lossless npz round trip, DeepLabCut CSV layout, atomic writes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.tracks import Tracks, load_tracks, save_tracks


def make_tracks(t: int = 7, n: int = 1, k: int = 3, with_extras: bool = True, seed: int = 0) -> Tracks:
    rng = np.random.default_rng(seed)
    keypoints = (rng.random((t, n, k, 2)) * 100).astype(np.float32)
    keypoints[2, 0, 1] = np.nan  # a missing keypoint
    keypoints[4, :, :, :] = np.nan  # a frame where nothing was found
    scores = rng.random((t, n, k)).astype(np.float32)
    scores[4] = 0
    jacobians = rng.normal(size=(t, n, k, 2, 2)).astype(np.float32) if with_extras else None
    covariances = rng.random((t, n, k, 2, 2)).astype(np.float32) if with_extras else None
    if with_extras:
        jacobians[4] = np.nan
    return Tracks(
        keypoints=keypoints, scores=scores, frame_indices=np.arange(0, 3 * t, 3), fps=29.97,
        jacobians=jacobians, covariances=covariances, video="some/video.mp4",
        keypoint_names=tuple(f"part{i}" for i in range(k)), subject_names=tuple(f"mouse{i}" for i in range(n)),
    )


def assert_same(a: Tracks, b: Tracks) -> None:
    np.testing.assert_array_equal(a.keypoints, b.keypoints)  # NaN == NaN here
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.frame_indices, b.frame_indices)
    for name in ("jacobians", "covariances"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)
    assert a.fps == b.fps
    assert a.video == b.video
    assert a.keypoint_names == b.keypoint_names
    assert a.subject_names == b.subject_names


def test_construction_normalises_types_and_names() -> None:
    tracks = Tracks(keypoints=np.zeros((4, 2, 3, 2), dtype=np.float64), scores=np.ones((4, 2, 3)), frame_indices=[0, 1, 2, 3], fps=10)
    assert tracks.keypoints.dtype == np.float32 and tracks.scores.dtype == np.float32
    assert tracks.frame_indices.dtype == np.int64
    assert tracks.keypoint_names == ("kp0", "kp1", "kp2")
    assert tracks.subject_names == ("subject0", "subject1")
    assert (tracks.num_frames, tracks.num_subjects, tracks.num_keypoints) == (4, 2, 3)
    assert len(tracks) == 4 and isinstance(tracks.fps, float)


@pytest.mark.parametrize("with_extras", [True, False])
@pytest.mark.parametrize("subjects", [1, 2])
def test_npz_round_trip_is_exact(tmp_path: Path, with_extras: bool, subjects: int) -> None:
    tracks = make_tracks(n=subjects, with_extras=with_extras)
    path = save_tracks(tracks, tmp_path / "tracks.npz")
    assert path == tmp_path / "tracks.npz"
    back = load_tracks(path)
    assert_same(tracks, back)
    assert np.isnan(back.keypoints[2, 0, 1]).all() and np.isnan(back.keypoints[4]).all()
    # Readable without pickles.
    with np.load(path, allow_pickle=False) as data:
        assert data["keypoints"].shape == tracks.keypoints.shape


def test_select_frames() -> None:
    tracks = make_tracks()
    part = tracks.select_frames(slice(1, 4))
    assert part.num_frames == 3
    np.testing.assert_array_equal(part.frame_indices, [3, 6, 9])
    np.testing.assert_array_equal(part.jacobians, tracks.jacobians[1:4])
    mask = tracks.scores[:, 0, 0] > 0.5
    assert tracks.select_frames(mask).num_frames == int(mask.sum())


def _csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_csv_header_layout_single_subject(tmp_path: Path) -> None:
    tracks = make_tracks(k=2)
    rows = _csv_rows(save_tracks(tracks, tmp_path / "tracks.csv"))
    assert rows[0] == ["scorer"] + ["fomm_kp"] * 6
    assert rows[1] == ["bodyparts", "part0", "part0", "part0", "part1", "part1", "part1"]
    assert rows[2] == ["coords", "x", "y", "likelihood", "x", "y", "likelihood"]
    body = rows[3:]
    assert len(body) == tracks.num_frames
    assert [r[0] for r in body] == [str(i) for i in tracks.frame_indices]
    x, y = tracks.keypoints[0, 0, 1]
    assert float(body[0][4]) == pytest.approx(x, abs=1e-3)
    assert float(body[0][5]) == pytest.approx(y, abs=1e-3)
    assert float(body[0][6]) == pytest.approx(tracks.scores[0, 0, 1], abs=1e-4)
    assert body[2][4:6] == ["", ""]  # missing keypoint: empty cells, not 'nan'


def test_csv_header_layout_multi_subject(tmp_path: Path) -> None:
    tracks = make_tracks(n=2, k=2)
    rows = _csv_rows(save_tracks(tracks, tmp_path / "tracks.csv"))
    assert [r[0] for r in rows[:4]] == ["scorer", "individuals", "bodyparts", "coords"]
    assert rows[1][1:] == ["mouse0"] * 6 + ["mouse1"] * 6
    assert rows[2][1:4] == ["part0"] * 3 and rows[2][7:10] == ["part0"] * 3
    assert len(rows) == 4 + tracks.num_frames


def test_csv_reads_back_through_interop(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    tracks = make_tracks(n=2, k=3)
    back = load_tracks(save_tracks(tracks, tmp_path / "tracks.csv"))
    np.testing.assert_allclose(back.keypoints, tracks.keypoints, atol=1e-3)  # NaNs in the same places
    np.testing.assert_allclose(back.scores, tracks.scores, atol=1e-4)
    np.testing.assert_array_equal(back.frame_indices, tracks.frame_indices)
    assert back.keypoint_names == tracks.keypoint_names
    assert back.subject_names == tracks.subject_names


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(keypoints=np.zeros((5, 1, 3))), r"keypoints must have shape \(T, N, K, 2\)"),
        (dict(keypoints=np.zeros((5, 1, 3, 3))), r"keypoints must have shape \(T, N, K, 2\)"),
        (dict(scores=np.zeros((5, 1, 2))), r"scores must have shape \(5, 1, 3\)"),
        (dict(frame_indices=np.arange(4)), r"frame_indices must have shape \(5,\)"),
        (dict(jacobians=np.zeros((5, 1, 3, 2))), r"jacobians must have shape \(5, 1, 3, 2, 2\)"),
        (dict(covariances=np.zeros((5, 1, 3, 3, 3))), r"covariances must have shape"),
        (dict(keypoint_names=("a", "b")), "3 keypoints but 2 keypoint names"),
        (dict(subject_names=("a", "b")), "1 subjects but 2 subject names"),
    ],
)
def test_shape_validation(change: dict, message: str) -> None:
    arguments = dict(keypoints=np.zeros((5, 1, 3, 2)), scores=np.zeros((5, 1, 3)), frame_indices=np.arange(5), fps=10.0)
    arguments.update(change)
    with pytest.raises(FommError, match=message):
        Tracks(**arguments)


def test_unknown_formats_and_missing_files(tmp_path: Path) -> None:
    tracks = make_tracks()
    with pytest.raises(FommError, match="cannot write tracks as '.txt'"):
        save_tracks(tracks, tmp_path / "tracks.txt")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FommError, match="tracks file not found"):
        load_tracks(tmp_path / "missing.npz")
    (tmp_path / "tracks.json").write_text("{}")
    with pytest.raises(FommError, match="cannot read tracks from '.json'"):
        load_tracks(tmp_path / "tracks.json")


def test_npz_that_is_not_tracks(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, something=np.zeros(3))
    with pytest.raises(FommError, match="not a fomm_kp tracks file"):
        load_tracks(path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(FommError, match="not a fomm_kp tracks file"):
        load_tracks(garbage)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out" / "file.npz"

    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert not target.parent.exists()  # nothing left, not even the folder it made
    # An existing file survives a failed rewrite untouched.
    atomic_write(target, lambda tmp: tmp.write_bytes(b"complete"))
    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_bytes() == b"complete"
    assert [p.name for p in target.parent.iterdir()] == ["file.npz"]


def test_save_tracks_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "tracks.npz"
    save_tracks(make_tracks(seed=1), path)
    newer = make_tracks(seed=2)
    save_tracks(newer, path)
    assert_same(load_tracks(path), newer)
    assert [p.name for p in tmp_path.iterdir()] == ["tracks.npz"]
