"""Readers for labelled frames: DeepLabCut CollectedData (CSV, both index layouts, H5) and SLEAP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fomm_kp.errors import FommError
from fomm_kp.evaluation.labels import load_labels, read_dlc_labels


def _write_images(folder: Path, count: int) -> list[str]:
    import imageio.v3 as iio

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        iio.imwrite(folder / f"img{i * 7:04d}.png", np.full((24, 32, 3), 10 * i, dtype=np.uint8))
        names.append(f"img{i * 7:04d}.png")
    return names


def _dlc_csv_old(project: Path, names: list[str], points: np.ndarray, parts: list[str]) -> Path:
    lines = [
        "scorer," + ",".join(["me"] * 2 * len(parts)),
        "bodyparts," + ",".join(p for p in parts for _ in "xy"),
        "coords," + ",".join("x,y".split(",") * len(parts)),
    ]
    for name, row in zip(names, points):
        cells = ["" if not np.isfinite(v) else repr(float(v)) for v in row.ravel()]
        lines.append(f"labeled-data/clip/{name}," + ",".join(cells))
    path = project / "labeled-data" / "clip" / "CollectedData_me.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_dlc_csv_single_index_column(tmp_path, rng):
    names = _write_images(tmp_path / "labeled-data" / "clip", 5)
    points = rng.uniform(0, 30, (5, 3, 2))
    points[2, 1] = np.nan  # one part not labelled in one image
    path = _dlc_csv_old(tmp_path, names, points, ["nose", "ear", "tail"])
    labelled = load_labels(path)
    assert labelled.part_names == ("nose", "ear", "tail")
    np.testing.assert_allclose(labelled.points, points, rtol=1e-6)
    assert np.isnan(labelled.points[2, 1]).all()
    np.testing.assert_array_equal(labelled.frame_indices, [0, 7, 14, 21, 28])  # from the image names
    assert all(Path(p).is_file() for p in labelled.image_paths)
    images = labelled.load_images()
    assert images.shape == (5, 24, 32, 3) and images[3, 0, 0, 0] == 30


def test_dlc_csv_three_index_columns(tmp_path, rng):
    """Newer DeepLabCut writes the image path as three index columns."""
    names = _write_images(tmp_path / "labeled-data" / "clip", 3)
    points = rng.uniform(0, 30, (3, 2, 2))
    lines = ["scorer,,,me,me,me,me", "bodyparts,,,a,a,b,b", "coords,,,x,y,x,y"]
    for name, row in zip(names, points):
        lines.append(f"labeled-data,clip,{name}," + ",".join(repr(float(v)) for v in row.ravel()))
    path = tmp_path / "labeled-data" / "clip" / "CollectedData_me.csv"
    path.write_text("\n".join(lines) + "\n")
    labelled = read_dlc_labels(path)
    np.testing.assert_allclose(labelled.points, points, rtol=1e-6)
    assert labelled.image_paths[1].endswith("img0007.png") and Path(labelled.image_paths[1]).is_file()


def test_dlc_multi_animal_needs_an_individual(tmp_path):
    lines = [
        "scorer,me,me,me,me",
        "individuals,m1,m1,m2,m2",
        "bodyparts,nose,nose,nose,nose",
        "coords,x,y,x,y",
        "labeled-data/clip/img0000.png,1,2,3,4",
    ]
    path = tmp_path / "CollectedData_me.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FommError, match="several animals"):
        read_dlc_labels(path)
    second = read_dlc_labels(path, individual="m2")
    np.testing.assert_allclose(second.points[0, 0], [3, 4])


def test_dlc_h5_matches_csv(tmp_path, rng):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    names = _write_images(tmp_path / "labeled-data" / "clip", 4)
    points = rng.uniform(0, 30, (4, 2, 2))
    columns = pd.MultiIndex.from_product([["me"], ["a", "b"], ["x", "y"]], names=["scorer", "bodyparts", "coords"])
    frame = pd.DataFrame(points.reshape(4, -1), columns=columns, index=[f"labeled-data/clip/{n}" for n in names])
    path = tmp_path / "labeled-data" / "clip" / "CollectedData_me.h5"
    frame.to_hdf(path, key="df_with_missing")
    labelled = load_labels(path)
    np.testing.assert_allclose(labelled.points, points, rtol=1e-6)
    assert labelled.part_names == ("a", "b")


def test_slp_user_instances(tmp_path):
    sio = pytest.importorskip("sleap_io")
    skeleton = sio.Skeleton(["head", "tail"])
    video = sio.Video(filename="clip.mp4")
    frames = []
    for index in (3, 8):
        user = sio.Instance.from_numpy(np.array([[index, 1.0], [index, 2.0]]), skeleton=skeleton)
        predicted = sio.PredictedInstance.from_numpy(np.array([[99.0, 99.0], [99.0, 99.0]]), skeleton=skeleton)
        frames.append(sio.LabeledFrame(video=video, frame_idx=index, instances=[predicted, user]))
    only_predicted = sio.PredictedInstance.from_numpy(np.zeros((2, 2)), skeleton=skeleton)
    frames.append(sio.LabeledFrame(video=video, frame_idx=12, instances=[only_predicted]))
    path = tmp_path / "labels.slp"
    sio.save_slp(sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skeleton]), str(path))
    labelled = load_labels(path)
    assert labelled.part_names == ("head", "tail")
    np.testing.assert_array_equal(labelled.frame_indices, [3, 8])
    np.testing.assert_allclose(labelled.points[1], [[8, 1], [8, 2]])
    assert labelled.image_paths == ("", "")


def test_bad_label_files(tmp_path):
    with pytest.raises(FommError, match="not found"):
        load_labels(tmp_path / "missing.csv")
    bad = tmp_path / "bad.txt"
    bad.write_text("x")
    with pytest.raises(FommError, match="unknown label format"):
        load_labels(bad)
    notdlc = tmp_path / "plain.csv"
    notdlc.write_text("a,b\n1,2\n")
    with pytest.raises(FommError, match="not a DeepLabCut"):
        load_labels(notdlc)


def test_openfield_labels(shared_data):
    labelled = load_labels(shared_data / "dlc-openfield/labeled-data/m4s1/CollectedData_Pranav.csv")
    assert len(labelled) == 116 and labelled.part_names == ("snout", "leftear", "rightear", "tailbase")
    assert np.isfinite(labelled.points).all()
    assert all(Path(p).is_file() for p in labelled.image_paths)
    np.testing.assert_allclose(labelled.points[0, 0], [21.521, 265.428], atol=1e-3)
