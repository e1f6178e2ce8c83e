"""Grey frames as one plane (fomm_kp.grey): the same pixels as their RGB conversion, or RGB where not grey.

Tracking a grey video through its grey planes gives the tracks of the RGB path exactly: the
synthetic arena clips are grey (below), and tests/runtime/test_tracking.py checks one-pass tracking
(grey planes) against the two-pass localisation (RGB frames) on them and on the open-field clip."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest

from conftest import disc_frames, synthetic_frames, write_video
from fomm_kp.decoding import decoded_frames, rgb_pixels
from fomm_kp.grey import GreyConverter


def _frame(luma: np.ndarray, chroma: int = 128, fmt: str = "yuv444p", colour_range: int = 0) -> av.VideoFrame:
    """A decoded-like frame of ``fmt`` with the given luma plane and constant chroma."""
    height, width = luma.shape
    frame = av.VideoFrame(width, height, fmt)
    frame.color_range = colour_range
    for index, plane in enumerate(frame.planes):
        pixels = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        pixels[:] = chroma if index else 0
        if index == 0:
            pixels[:, :width] = luma
    return frame


@pytest.mark.parametrize("fmt", ["yuv444p", "yuv420p", "yuvj420p", "gray"])
@pytest.mark.parametrize("width", [64, 15])
def test_a_grey_frame_comes_as_its_grey_plane(fmt: str, width: int, rng: np.random.Generator) -> None:
    if fmt.endswith("420p") and width % 2:
        width += 1
    luma = rng.integers(0, 256, (12, width)).astype(np.uint8)
    luma[0, :2] = (0, 255)  # both ends of the range, where the conversion clips
    frame = _frame(luma, fmt=fmt)
    converter = GreyConverter(rgb_pixels)
    grey = converter(frame)
    rgb = rgb_pixels(frame)
    assert grey.shape == luma.shape and converter.grey == 1
    for channel in range(3):
        np.testing.assert_array_equal(grey, rgb[:, :, channel])


def test_a_frame_with_colour_comes_as_rgb(rng: np.random.Generator) -> None:
    luma = rng.integers(16, 236, (10, 16)).astype(np.uint8)
    converter = GreyConverter(rgb_pixels)
    tinted = _frame(luma, chroma=140)
    np.testing.assert_array_equal(converter(tinted), rgb_pixels(tinted))
    one_pixel = _frame(luma)
    np.frombuffer(one_pixel.planes[2], np.uint8)[37] = 129  # one chroma sample off grey
    assert converter(one_pixel).shape == (10, 16, 3) and converter.grey == 0 and converter.rgb == 2


def test_a_lookup_that_does_not_reproduce_the_conversion_is_not_used(rng: np.random.Generator) -> None:
    """The table is checked on a real frame: a conversion that depends on more than the luma
    (here: one pixel altered by position) makes every frame come as RGB."""
    def position_dependent(frame: av.VideoFrame) -> np.ndarray:
        rgb = rgb_pixels(frame).copy()
        if frame.width > 16:
            rgb[0, 20] ^= 1
        return rgb

    converter = GreyConverter(position_dependent)
    frame = _frame(rng.integers(0, 256, (8, 32)).astype(np.uint8))
    assert converter(frame).shape == (8, 32, 3) and converter(frame).shape == (8, 32, 3) and converter.grey == 0


def _grey_clip(folder: Path, pix_fmt: str) -> Path:
    frames = synthetic_frames(12)[0]
    clip = write_video(folder / "grey.mp4", frames, fps=10.0)
    if pix_fmt == "yuv420p":
        return clip
    out = folder / f"grey_{pix_fmt}.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(clip), "-c:v", "libx264",
                    "-pix_fmt", pix_fmt, "-crf", "18", str(out)], check=True)
    return out


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])
def test_decoded_frames_of_a_grey_video_are_its_rgb_frames(tmp_path: Path, pix_fmt: str) -> None:
    clip = _grey_clip(tmp_path, pix_fmt)
    rgb = list(decoded_frames(clip))
    grey = list(decoded_frames(clip, grey=True))
    assert [i for i, _ in grey] == [i for i, _ in rgb] == list(range(12))
    for (_, plane), (_, frame) in zip(grey, rgb):
        assert plane.shape == frame.shape[:2]
        for channel in range(3):
            np.testing.assert_array_equal(plane, frame[:, :, channel])


def test_decoded_frames_of_a_colour_video_stay_rgb(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "disc.mp4", disc_frames(6)[0])
    for (_, frame), (_, expected) in zip(decoded_frames(clip, grey=True), decoded_frames(clip)):
        assert frame.ndim == 3
        np.testing.assert_array_equal(frame, expected)
