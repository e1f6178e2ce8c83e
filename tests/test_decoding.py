"""Decoding on a background thread: the hand-over queue and PyAV decoding of files."""

from __future__ import annotations

import subprocess
import threading
import time

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from conftest import synthetic_frames, write_video
from fomm_kp.decoding import Prefetch, decoded_frames, sampled_frames
from fomm_kp.errors import FommError
from fomm_kp.grey import as_rgb
from fomm_kp.video import FrameRange, iter_frames


def test_prefetch_hands_over_every_item_in_order() -> None:
    assert list(Prefetch(range(100), size=3)) == list(range(100))


def test_prefetch_drop_oldest_keeps_the_newest_and_counts_the_rest() -> None:
    done = threading.Event()

    def items():
        yield from range(50)
        done.set()

    stream = Prefetch(items(), size=2, drop_oldest=True)
    assert done.wait(5.0)  # the producer never waits for the slow consumer
    received = list(stream)
    assert received == [48, 49]
    assert stream.dropped == 48


def test_prefetch_raises_the_producers_error_in_the_consumer() -> None:
    def items():
        yield 1
        raise FommError("broken source")

    stream = Prefetch(items(), size=2)
    assert stream.get(timeout=5) == 1
    with pytest.raises(FommError, match="broken source"):
        stream.get(timeout=5)


def test_prefetch_close_stops_a_producer_waiting_on_a_full_queue() -> None:
    produced = []

    def items():
        for i in range(10_000):
            produced.append(i)
            yield i

    stream = Prefetch(items(), size=1)
    time.sleep(0.1)
    stream.close()
    count = len(produced)
    time.sleep(0.1)
    assert len(produced) == count < 10_000
    assert not stream._thread.is_alive()


def test_decoded_frames_equal_imageio_frames(disc_clip) -> None:
    expected = list(iter_frames(disc_clip.path, start=2, stop=20, stride=3))
    got = list(decoded_frames(disc_clip.path, FrameRange(2, 20, 3)))
    assert [i for i, _ in got] == [i for i, _ in expected] == [2, 5, 8, 11, 14, 17]
    for (_, a), (_, b) in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_decoded_frames_convert_only_the_frames_kept(disc_clip) -> None:
    got = list(decoded_frames(disc_clip.path, keep=np.array([3, 7])))
    assert len(got) == 24
    assert [i for i, frame in got if frame is not None] == [3, 7]


def test_decoded_frames_of_an_image_folder(tmp_path, disc_clip) -> None:
    from PIL import Image

    for i, frame in enumerate(disc_clip.frames[:4]):
        Image.fromarray(frame).save(tmp_path / f"f{i:02d}.png")
    got = list(decoded_frames(tmp_path, keep=np.array([1])))
    assert [i for i, _ in got] == [0, 1, 2, 3]
    np.testing.assert_array_equal(got[1][1], disc_clip.frames[1])
    assert got[0][1] is None


def test_decoded_frames_of_a_file_that_is_not_a_video(tmp_path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(FommError, match="cannot read video"):
        list(decoded_frames(bad))


@pytest.mark.parametrize("b_frames", [0, 3])
def test_sampled_frames_are_the_decoded_frames_at_those_indices(tmp_path, b_frames: int) -> None:
    """Frames no other refers to are skipped unless wanted: the wanted ones are the same pixels,
    with and without B-frames (which are reordered and often not referred to)."""
    frames = synthetic_frames(40)[0]
    plain = write_video(tmp_path / "plain.mp4", frames)
    clip = tmp_path / f"bf{b_frames}.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(plain), "-c:v", "libx264",
                    "-bf", str(b_frames), "-g", "12", "-pix_fmt", "yuv444p", str(clip)], check=True)
    every = dict(decoded_frames(clip))
    for indices in (np.array([0, 5, 6, 7, 21, 39]), np.arange(1, 40, 3), np.array([38])):
        for grey in (False, True):
            sampled = sampled_frames(clip, indices, grey=grey)
            assert [index for index, _ in sampled] == indices.tolist()
            for index, frame in sampled:
                np.testing.assert_array_equal(as_rgb(frame), every[index])
    assert sampled_frames(clip, np.array([40])) is None  # past the end: not sampled here


def test_sampled_frames_leave_image_folders_to_decoded_frames(tmp_path, disc_clip) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(disc_clip.frames[:3]):
        iio.imwrite(folder / f"{i:03d}.png", frame)
    assert sampled_frames(folder, np.array([0, 2])) is None
