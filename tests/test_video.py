"""Video and image I/O: write with VideoWriter, read back, ranges, crops, folders, bad files."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from fomm_kp.errors import FommError
from fomm_kp.grey import as_rgb
from fomm_kp.video import (
    VideoWriter,
    crop_frame,
    crop_resized,
    iter_frames,
    probe,
    read_frame_at,
    read_frames,
    read_image,
    resize_frame,
)

from conftest import SyntheticClip, disc_frames, write_video, write_zero_frame_video


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_probe_of_written_mp4(disc_clip: SyntheticClip) -> None:
    info = probe(disc_clip.path)
    assert (info.width, info.height) == (64, 48)
    assert info.num_frames == len(disc_clip.frames) == 24
    assert info.fps == pytest.approx(10.0)
    assert info.path == str(disc_clip.path)


def test_mp4_frames_read_back_close_to_what_was_written(disc_clip: SyntheticClip) -> None:
    indices, frames = read_frames(disc_clip.path)
    assert np.array_equal(indices, np.arange(24))
    assert frames.shape == (24, 48, 64, 3) and frames.dtype == np.uint8
    error = np.abs(frames.astype(float) - disc_clip.frames.astype(float)).mean()
    assert error < 12, error  # lossy H.264 + yuv420p, but the same pictures
    # Frames are not shuffled: each one is closest to its own original.
    distances = np.abs(frames[:, None].astype(float) - disc_clip.frames[None].astype(float)).mean(axis=(2, 3, 4))
    assert np.array_equal(distances.argmin(axis=1), np.arange(24))


def test_stride_start_stop(disc_clip: SyntheticClip) -> None:
    indices = [i for i, _ in iter_frames(disc_clip.path, start=3, stop=17, stride=4)]
    assert indices == [3, 7, 11, 15]
    assert [i for i, _ in iter_frames(disc_clip.path, start=20)] == [20, 21, 22, 23]
    assert [i for i, _ in iter_frames(disc_clip.path, stop=100, stride=10)] == [0, 10, 20]
    assert list(iter_frames(disc_clip.path, start=30)) == []
    _, all_frames = read_frames(disc_clip.path)
    for i, frame in iter_frames(disc_clip.path, start=5, stop=9, stride=2):
        assert np.array_equal(frame, all_frames[i])
    indices, frames = read_frames(disc_clip.path, stride=3, max_frames=4)
    assert np.array_equal(indices, [0, 3, 6, 9]) and len(frames) == 4


def test_bad_ranges(disc_clip: SyntheticClip) -> None:
    with pytest.raises(FommError, match="bad frame range"):
        next(iter_frames(disc_clip.path, stride=0))
    with pytest.raises(FommError, match="no frames read"):
        read_frames(disc_clip.path, start=100)


def test_read_frame_at_matches_streaming(disc_clip: SyntheticClip) -> None:
    _, frames = read_frames(disc_clip.path)
    for index in (0, 13, 23):
        assert np.array_equal(read_frame_at(disc_clip.path, index), frames[index])


def test_crop_and_size_while_reading(disc_clip: SyntheticClip) -> None:
    _, full = read_frames(disc_clip.path, stop=2)
    _, cropped = read_frames(disc_clip.path, stop=2, crop=(10, 4, 42, 36))
    assert cropped.shape == (2, 32, 32, 3)
    assert np.array_equal(cropped, full[:, 4:36, 10:42])
    _, resized = read_frames(disc_clip.path, stop=2, crop=(10, 4, 42, 36), size=16)
    assert resized.shape == (2, 16, 16, 3)
    _, rect = read_frames(disc_clip.path, stop=1, size=(20, 10))
    assert rect.shape == (1, 10, 20, 3)


def test_crop_frame_pads_outside_with_edge_pixels() -> None:
    frame = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    inside = crop_frame(frame, (2, 1, 6, 5))
    assert np.array_equal(inside, frame[1:5, 2:6])
    crop = crop_frame(frame, (-3, -2, 5, 4))  # sticks out left and top
    assert crop.shape == (6, 8, 3)
    assert np.array_equal(crop[2:, 3:], frame[0:4, 0:5])
    assert np.array_equal(crop[:2, 3:], np.repeat(frame[:1, 0:5], 2, axis=0))  # top rows repeat row 0
    assert np.array_equal(crop[2:, :3], np.repeat(frame[0:4, :1], 3, axis=1))  # left columns repeat col 0
    beyond = crop_frame(frame, (6, 4, 11, 9))  # right and bottom
    assert beyond.shape == (5, 5, 3)
    assert np.array_equal(beyond[:2, :2], frame[4:6, 6:8])
    assert np.array_equal(beyond[4, 4], frame[5, 7])
    everywhere = crop_frame(frame, (-2, -2, 10, 8))
    assert everywhere.shape == (10, 12, 3)
    assert np.array_equal(everywhere[2:8, 2:10], frame)
    with pytest.raises(FommError, match="empty crop box"):
        crop_frame(frame, (4, 4, 4, 6))


def test_resize_frame() -> None:
    frame = np.full((30, 40, 3), 200, dtype=np.uint8)
    assert resize_frame(frame, 16).shape == (16, 16, 3)
    assert resize_frame(frame, (8, 12)).shape == (12, 8, 3)
    assert np.all(resize_frame(frame, 16) == 200)
    assert resize_frame(frame, (40, 30)) is frame


def test_odd_size_is_padded_to_even(tmp_path: Path) -> None:
    frames, _ = disc_frames(num_frames=5, width=33, height=25, radius=5)
    path = write_video(tmp_path / "odd.mp4", frames, fps=12.5)
    info = probe(path)
    assert (info.width, info.height, info.num_frames) == (34, 26, 5)
    assert info.fps == pytest.approx(12.5)
    _, back = read_frames(path)
    assert np.abs(back[:, :25, :33].astype(float) - frames.astype(float)).mean() < 15
    # The padding repeats the last row and column.
    assert np.abs(back[:, 25].astype(float) - back[:, 24].astype(float)).mean() < 15


def test_gif_round_trip(tmp_path: Path) -> None:
    frames, _ = disc_frames(num_frames=6, width=40, height=30, radius=6)
    path = write_video(tmp_path / "clip.gif", frames, fps=5.0)
    info = probe(path)
    assert (info.width, info.height, info.num_frames) == (40, 30, 6)
    indices, back = read_frames(path)
    assert np.array_equal(indices, np.arange(6))
    assert back.shape == (6, 30, 40, 3)
    assert np.abs(back.astype(float) - frames.astype(float)).mean() < 12  # palette quantisation
    assert [i for i, _ in iter_frames(path, start=1, stride=2)] == [1, 3, 5]
    assert np.array_equal(read_frame_at(path, 4), back[4])


def test_image_folder(tmp_path: Path) -> None:
    frames, _ = disc_frames(num_frames=5, width=32, height=24, radius=5)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        iio.imwrite(folder / f"img_{i:03d}.png", frame)
    (folder / "notes.txt").write_text("not an image")
    info = probe(folder)
    assert (info.width, info.height, info.num_frames) == (32, 24, 5)
    indices, back = read_frames(folder)
    assert np.array_equal(indices, np.arange(5))
    assert np.array_equal(back, frames)  # PNG is lossless
    assert [i for i, _ in iter_frames(folder, start=1, stop=4, stride=2)] == [1, 3]
    assert np.array_equal(read_frame_at(folder, 2), frames[2])
    with pytest.raises(FommError, match="out of range"):
        read_frame_at(folder, 5)
    _, crops = read_frames(folder, crop=(-4, 0, 12, 16), size=8)
    assert crops.shape == (5, 8, 8, 3)


def test_single_image_and_grey_images(tmp_path: Path) -> None:
    grey = (np.arange(20 * 10) % 256).astype(np.uint8).reshape(10, 20)
    iio.imwrite(tmp_path / "grey.png", grey)
    image = read_image(tmp_path / "grey.png")
    assert image.shape == (10, 20, 3) and np.array_equal(image[..., 1], grey)
    info = probe(tmp_path / "grey.png")
    assert (info.width, info.height, info.num_frames) == (20, 10, 1)


def test_probe_errors(tmp_path: Path) -> None:
    with pytest.raises(FommError, match="video not found"):
        probe(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(FommError, match="cannot read video") as info:
        probe(text)
    assert "\n" not in str(info.value)
    with pytest.raises(FommError, match="cannot read video"):
        list(iter_frames(text))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FommError, match="no images"):
        probe(empty)
    with pytest.raises(FommError, match="image not found"):
        read_image(tmp_path / "missing.png")
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"\x89PNG not really")
    with pytest.raises(FommError, match="cannot read image"):
        read_image(bad_png)


def test_zero_frame_video(tmp_path: Path) -> None:
    path = write_zero_frame_video(tmp_path / "zero.avi")
    with pytest.raises(FommError, match="no frames"):
        probe(path)


def test_writer_leaves_nothing_when_writing_fails(tmp_path: Path) -> None:
    out = tmp_path / "out"
    frame = np.zeros((16, 16, 3), dtype=np.uint8)
    with pytest.raises(FommError, match="frame size changed"):
        with VideoWriter(out / "clip.mp4", fps=10) as writer:
            for _ in range(3):
                writer.write(frame)
            writer.write(np.zeros((8, 8, 3), dtype=np.uint8))
    assert not out.exists()  # not even the folder it made
    out.mkdir()
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out / "clip.gif", fps=10) as writer:
            writer.write(frame)
            raise RuntimeError("boom")
    assert _files(out) == []


def test_writer_with_no_frames_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FommError, match="no frames were written"):
        with VideoWriter(tmp_path / "nothing.mp4"):
            pass
    assert _files(tmp_path) == []


def test_writer_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(FommError, match="cannot write video"):
        VideoWriter(tmp_path / "clip.txt")


def test_writer_replaces_an_existing_file_only_on_success(tmp_path: Path) -> None:
    frames, _ = disc_frames(num_frames=3, width=16, height=16, radius=3)
    path = write_video(tmp_path / "clip.mp4", frames)
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with VideoWriter(path) as writer:
            writer.write(frames[0])
            raise RuntimeError("interrupted")
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["clip.mp4"]


def test_turned_crop_samples_the_rotated_square():
    frame = np.zeros((60, 80, 3), dtype=np.uint8)
    frame[30, 50] = 255  # 10 px right of the box centre (40, 30)... in frame pixels
    box = (30, 20, 51, 41)  # 21 px square centred on pixel (40, 30)
    plain = crop_frame(frame, box)
    assert plain[10, 20].max() == 255
    turned = crop_frame(frame, (*box, np.pi / 2))  # crop x runs down the frame, crop y runs left
    assert turned.shape == plain.shape
    # frame offset (+10, 0) from the centre = crop offset (0, -10)
    assert turned[0, 10].max() == 255 and turned.sum() == 255 * 3
    np.testing.assert_array_equal(crop_frame(frame, (*box, 0.0)), plain)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_grey_frame_is_cut_and_resized_as_each_channel_of_its_rgb_frame(seed: int) -> None:
    """A grey frame ``(H, W)`` (fomm_kp.grey) gives the crop of its RGB frame, pixel for pixel:
    straight and turned boxes, inside and across the frame's edges."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 256, (60, 80)).astype(np.uint8)
    rgb = as_rgb(grey)
    assert rgb.shape == (60, 80, 3) and as_rgb(rgb) is rgb and all((rgb[:, :, c] == grey).all() for c in range(3))
    for _ in range(12):
        cx, cy, side = rng.uniform(-10, 90), rng.uniform(-10, 70), rng.integers(8, 50)
        angle = 0.0 if rng.random() < 0.3 else rng.uniform(-np.pi, np.pi)
        box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, angle])
        for size in (16, int(side)):
            np.testing.assert_array_equal(crop_resized(grey, box, size), crop_resized(as_rgb(grey), box, size))
        np.testing.assert_array_equal(as_rgb(crop_frame(grey, box[:4])), crop_frame(as_rgb(grey), box[:4]))
