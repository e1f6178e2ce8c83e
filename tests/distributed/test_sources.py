"""Which files a many-video command works on: folders, list files, globs; and where outputs go."""

from __future__ import annotations

from pathlib import Path

import pytest

from fomm_kp.distributed import expand_sources, is_many, output_paths
from fomm_kp.errors import FommError

SUFFIXES = (".mp4", ".avi")


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folders_lists_and_globs_expand_in_order_without_repeats(tmp_path: Path) -> None:
    a, b, c = (touch(tmp_path / "videos" / name) for name in ("b.mp4", "a.avi", "c.mp4"))
    touch(tmp_path / "videos" / "notes.txt")  # not a video: a folder gives only wanted suffixes
    touch(tmp_path / "videos" / ".hidden.mp4")
    other = touch(tmp_path / "more" / "d.mp4")
    listing = tmp_path / "list.txt"
    listing.write_text("# study videos\nmore/d.mp4\n\nvideos/c.mp4\n")
    found = expand_sources([tmp_path / "videos", listing, str(tmp_path / "more" / "*.mp4")], SUFFIXES)
    assert found == [b, a, c, other]


def test_missing_items_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FommError, match="not found"):
        expand_sources([tmp_path / "nope.mp4"], SUFFIXES)
    with pytest.raises(FommError, match="no files match"):
        expand_sources([str(tmp_path / "*.mp4")], SUFFIXES)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FommError, match="no .mp4 / .avi files"):
        expand_sources([tmp_path / "empty"], SUFFIXES)
    listing = tmp_path / "list.txt"
    listing.write_text("gone.mp4\n")
    with pytest.raises(FommError, match="line 1: file not found"):
        expand_sources([listing], SUFFIXES)


def test_is_many_tells_one_video_from_several(tmp_path: Path) -> None:
    video = touch(tmp_path / "one.mp4")
    images = tmp_path / "frames"  # a video stored as a folder of images is one source
    touch(images / "0001.png")
    touch(tmp_path / "study" / "a.mp4")
    assert not is_many([video], SUFFIXES)
    assert not is_many([images], SUFFIXES)
    assert is_many([tmp_path / "study"], SUFFIXES)
    assert is_many([video, video], SUFFIXES)
    assert is_many([str(tmp_path / "*.mp4")], SUFFIXES)
    assert is_many([touch(tmp_path / "list.txt")], SUFFIXES)


def test_outputs_named_by_stem_and_collisions_refused(tmp_path: Path) -> None:
    a, b = touch(tmp_path / "x" / "a.mp4"), touch(tmp_path / "x" / "b.mp4")
    assert output_paths([a, b], tmp_path / "out", ".npz") == [tmp_path / "out" / "a.npz", tmp_path / "out" / "b.npz"]
    with pytest.raises(FommError, match="would both write"):
        output_paths([a, touch(tmp_path / "y" / "a.avi")], tmp_path / "out", ".npz")
    with pytest.raises(FommError, match="would replace its input"):
        output_paths([touch(tmp_path / "z" / "t.csv")], tmp_path / "z", ".csv")
