"""Video and image I/O on imageio: probe, streaming reads, random access, crop/resize, writing.

Frames at this boundary are uint8 ``(H, W, 3)`` RGB arrays. Readers accept video files (mp4, avi,
mov, mkv, gif, ...) and folders of images (sorted by name). The frame count comes from decoding
the container's packets when the header does not state it (imageio's ffmpeg plugin reports
``inf``), so it is reliable.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import av
import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np
from PIL import Image

from fomm_kp.errors import FommError
from fomm_kp.files import check_regular, make_folders, remove_empty_folders
from fomm_kp.grey import as_rgb

__all__ = [
    "VideoInfo", "variable_rate", "probe", "iter_frames", "read_frames", "read_frame_at", "read_image",
    "resize_frame", "crop_frame", "crop_resized", "VideoWriter", "FrameRange", "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES", "WRITABLE_VIDEO_SUFFIXES",
]

log = logging.getLogger(__name__)

# The one table of file kinds: every reader, writer and CLI check takes its suffixes from here.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")  # videos read (and told from tracks files)
WRITABLE_VIDEO_SUFFIXES = (".mp4", ".gif", ".mov", ".avi", ".mkv")  # videos VideoWriter writes
_GIF = ".gif"


@dataclass(frozen=True)
class FrameRange:
    """Which frames of a video to use: ``range(start, stop, stride)`` (``stop=None``: to the end)."""

    start: int = 0
    stop: int | None = None
    stride: int = 1

    def __post_init__(self) -> None:
        if self.start < 0 or self.stride < 1:
            raise FommError(f"bad frame range: start={self.start}, stride={self.stride}")

    def indices(self, num_frames: int) -> range:
        """The frame indices of a video of ``num_frames`` frames."""
        return range(self.start, num_frames if self.stop is None else min(self.stop, num_frames), self.stride)


@dataclass(frozen=True)
class VideoInfo:
    """What a reader needs to know about a video or image folder. ``times``: float64 ``(num_frames,)``
    seconds of each frame from the first (the container's timestamps), or None (image folders)."""

    path: str
    width: int
    height: int
    fps: float
    num_frames: int
    times: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def variable_rate(self) -> bool:
        """Whether the frames' timestamps stray from ``index / fps`` by more than half a frame."""
        return variable_rate(self.times, np.arange(self.num_frames), self.fps)


def variable_rate(times: np.ndarray | None, frame_indices: np.ndarray, fps: float) -> bool:
    """Whether ``times`` (seconds of the frames ``frame_indices``) stray from ``index / fps`` (after
    the first frame's offset) by more than half a frame interval: a variable-frame-rate video."""
    if times is None or len(times) < 2:
        return False
    return bool(np.max(np.abs(times - times[0] - (frame_indices - frame_indices[0]) / fps)) > 0.5 / fps)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _check_exists(path: Path) -> None:
    check_regular(path, "video")
    if not path.exists():
        raise FommError(f"video not found: {path}")


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    """uint8 levels of an image of another type: booleans to 0/255, wider integers (16-bit images)
    scaled by their type's range (not clipped, which would leave them nearly binary), floats in
    [0, 1] scaled by 255 (other floats taken as 0–255 levels); NaN is 0."""
    if np.issubdtype(frame.dtype, np.integer) or frame.dtype == np.bool_:
        top = 1.0 if frame.dtype == np.bool_ else float(np.iinfo(frame.dtype).max)
        return np.round(np.clip(frame.astype(np.float64), 0, top) * (255.0 / top)).astype(np.uint8)
    frame = np.nan_to_num(frame.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    scale = 255.0 if frame.size and frame.max() <= 1.0 else 1.0
    return np.round(np.clip(frame * scale, 0, 255)).astype(np.uint8)


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        frame = _to_uint8(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    elif frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    elif frame.shape[2] == 4:
        frame = frame[:, :, :3]
    return np.ascontiguousarray(frame)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One image file as uint8 RGB ``(H, W, 3)``."""
    path = check_regular(path, "image")
    if not path.is_file():
        raise FommError(f"image not found: {path}")
    try:
        image = iio.imread(path)
    except Exception as exc:  # imageio raises many types for unreadable files
        raise FommError(f"cannot read image {path}: {exc.__class__.__name__}: {exc}") from exc
    if image.ndim == 4:  # an animated file: take its first frame
        image = image[0]
    return _to_rgb(image)


def _check_image_sizes(files: Sequence[Path], size: tuple[int, int]) -> None:
    """Every image of a folder must be readable (its header) and of one size: frames of one video."""
    for file in files[1:]:
        try:
            with Image.open(check_regular(file, "image")) as image:
                found = image.size
        except Exception as exc:  # PIL raises many types for files that are not images (or are bombs)
            raise FommError(f"cannot read image {file}: {exc.__class__.__name__}") from None
        if found != size:
            raise FommError(f"the images of {file.parent} differ in size: {files[0].name} is {size[0]}x{size[1]}, "
                            f"{file.name} is {found[0]}x{found[1]}; resize them to one size")


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, fps and a decoded frame count of a video file or image folder."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise FommError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        first = read_image(files[0])
        _check_image_sizes(files, (first.shape[1], first.shape[0]))
        return VideoInfo(str(path), first.shape[1], first.shape[0], 30.0, len(files))
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = read_image(path)
        return VideoInfo(str(path), image.shape[1], image.shape[0], 30.0, 1)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FommError(f"{path} has no video stream")
            stream = container.streams.video[0]
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
            rate = stream.average_rate or stream.base_rate or stream.guessed_rate
            fps = float(rate) if rate else 30.0
            # Count packets that carry frames: exact for the containers we meet, and far
            # cheaper than decoding. Header counts are unreliable (0 for many avi, inf in ffmpeg).
            # Their timestamps, sorted, are the frames' presentation times.
            stamps = [packet.pts for packet in container.demux(stream) if packet.size > 0]
            count, times = len(stamps), None
            if count and stream.time_base and None not in stamps:
                times = np.sort(np.asarray(stamps, dtype=np.float64) - min(stamps)) * float(stream.time_base)
    except FommError:
        raise
    except Exception as exc:
        raise FommError(f"cannot read video {path}: {exc.__class__.__name__}: {exc}") from exc
    if count == 0 or width == 0 or height == 0:
        raise FommError(f"video {path} has no frames")
    return VideoInfo(str(path), width, height, fps, count, times)


def crop_frame(frame: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """Crop ``box = (x0, y0, x1, y1)`` in pixels; parts outside the frame are filled with edge pixels.

    A fifth value turns the crop by that angle (radians) about the box centre: the crop's +x axis
    runs along ``(cos a, sin a)`` in the frame (y down), so a subject heading that way faces right
    in the crop. Turned crops are sampled bilinearly at the frame's resolution.
    """
    if len(box) == 5 and float(box[4]) != 0.0:
        return np.asarray(_turned_image(frame, box))
    x0, y0, x1, y1 = (int(round(v)) for v in box[:4])
    if x1 <= x0 or y1 <= y0:
        raise FommError(f"empty crop box {tuple(box)}")
    h, w = frame.shape[:2]
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
        return frame[y0:y1, x0:x1]
    pad = ((max(0, -y0), max(0, y1 - h)), (max(0, -x0), max(0, x1 - w)), (0, 0))[:frame.ndim]
    padded = np.pad(frame, pad, mode="edge")
    return padded[y0 + pad[0][0] : y1 + pad[0][0], x0 + pad[1][0] : x1 + pad[1][0]]


def _turned_image(frame: np.ndarray, box: Sequence[float]) -> Image.Image:
    x0, y0, x1, y1 = (int(round(v)) for v in box[:4])
    if x1 <= x0 or y1 <= y0:
        raise FommError(f"empty crop box {tuple(box)}")
    width, height = x1 - x0, y1 - y0
    cos, sin = float(np.cos(float(box[4]))), float(np.sin(float(box[4])))
    # Cut the square that holds the turned box (edge-padded as above), then let PIL sample it.
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0  # box centre, continuous coordinates (pixel i spans [i, i+1))
    reach = int(np.ceil(np.hypot(width, height) / 2.0)) + 2
    rx0, ry0 = int(np.floor(cx)) - reach, int(np.floor(cy)) - reach
    region = np.ascontiguousarray(crop_frame(frame, (rx0, ry0, rx0 + 2 * reach + 1, ry0 + 2 * reach + 1)))
    lx, ly = cx - rx0, cy - ry0
    # output point (X, Y) → region point: centre + R(angle) · ((X, Y) − output centre)
    coefficients = (cos, -sin, lx - cos * width / 2.0 + sin * height / 2.0,
                    sin, cos, ly - sin * width / 2.0 - cos * height / 2.0)
    return Image.fromarray(region).transform((width, height), Image.Transform.AFFINE, coefficients,
                                             resample=Image.Resampling.BILINEAR)


def resize_frame(frame: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (square side, or ``(width, height)``) with antialiasing."""
    width, height = (size, size) if isinstance(size, int) else size
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR, reducing_gap=2.0))


def crop_resized(frame: np.ndarray, box: Sequence[float], size: int) -> np.ndarray:
    """``resize_frame(crop_frame(frame, box), size)``, the same pixels without the copies between them;
    RGB ``(size, size, 3)`` (a grey frame ``(H, W)`` is cut as one channel: :func:`fomm_kp.grey.as_rgb`)."""
    if len(box) == 5 and float(box[4]) != 0.0:
        image = _turned_image(frame, box)
        if image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR, reducing_gap=2.0)
        return as_rgb(np.asarray(image))
    return as_rgb(resize_frame(np.ascontiguousarray(crop_frame(frame, box)), size))


def _frame_filter(index: int, start: int, stop: int | None, stride: int) -> bool:
    return index >= start and (stop is None or index < stop) and (index - start) % stride == 0


def iter_frames(
    path: str | os.PathLike,
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
    crop: Sequence[float] | None = None,
    size: int | tuple[int, int] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream ``(frame_index, frame)`` pairs with constant memory.

    Args:
        start, stop, stride: frame range ``range(start, stop, stride)`` (``stop=None``: to the end).
        crop: optional box ``(x0, y0, x1, y1)`` applied before resizing.
        size: optional output size (square side or ``(width, height)``).
    """
    if stride < 1 or start < 0:
        raise FommError(f"bad frame range: start={start}, stride={stride}")
    path = Path(path)
    _check_exists(path)

    def finish(frame: np.ndarray) -> np.ndarray:
        frame = _to_rgb(frame)
        if crop is not None:
            frame = crop_frame(frame, crop)
        if size is not None:
            frame = resize_frame(frame, size)
        return frame

    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        files = _image_files(path) if path.is_dir() else [path]
        for index in range(start, len(files) if stop is None else min(stop, len(files)), stride):
            yield index, finish(read_image(files[index]))
        return

    try:
        iterator = iio.imiter(path, plugin="pyav") if path.suffix.lower() != _GIF else iio.imiter(path)
        for index, frame in enumerate(iterator):
            if stop is not None and index >= stop:
                break
            if _frame_filter(index, start, stop, stride):
                yield index, finish(frame)
    except FommError:
        raise
    except Exception as exc:
        raise FommError(f"cannot read video {path}: {exc.__class__.__name__}: {exc}") from exc


def read_frames(
    path: str | os.PathLike,
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
    crop: Sequence[float] | None = None,
    size: int | tuple[int, int] | None = None,
    max_frames: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a range of frames into memory: ``(frame_indices (T,), frames (T, H, W, 3) uint8)``."""
    indices, frames = [], []
    for index, frame in iter_frames(path, start, stop, stride, crop, size):
        indices.append(index)
        frames.append(frame)
        if max_frames is not None and len(frames) >= max_frames:
            break
    if not frames:
        raise FommError(f"no frames read from {path} (start={start}, stop={stop}, stride={stride})")
    return np.asarray(indices, dtype=np.int64), np.stack(frames)


def read_frame_at(path: str | os.PathLike, index: int) -> np.ndarray:
    """Random access to one frame (pyav seeks; image folders index directly)."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        files = _image_files(path)
        if not 0 <= index < len(files):
            raise FommError(f"frame {index} out of range for {path} ({len(files)} images)")
        return read_image(files[index])

    try:
        frame = iio.imread(path, index=index, plugin="pyav") if path.suffix.lower() != _GIF else iio.imread(path, index=index)
    except Exception as exc:
        raise FommError(f"cannot read frame {index} of {path}: {exc.__class__.__name__}: {exc}") from exc
    return _to_rgb(frame)


class VideoWriter:
    """Write frames to ``.mp4`` (H.264, yuv420p) or ``.gif``; odd sizes are padded to even.

    Used as a context manager; the file appears at ``path`` only when writing finished (it is
    written to a temporary file first, then renamed). Frames must share one size.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in WRITABLE_VIDEO_SUFFIXES:
            raise FommError(f"cannot write video as '{suffix}' ({self.path}): use .mp4 or .gif")
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else 30.0
        self._created = make_folders(self.path.parent)  # removed again if the video is discarded
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._frames_gif: list[np.ndarray] = []
        self._writer = None
        self._shape: tuple[int, ...] | None = None
        self.num_frames = 0

    def __enter__(self) -> "VideoWriter":
        return self

    def write(self, frame: np.ndarray) -> None:
        frame = _to_rgb(frame)
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise FommError(f"frame size changed while writing {self.path}: {frame.shape} vs {self._shape}")
        if self.path.suffix.lower() == _GIF:
            self._frames_gif.append(frame)
        else:
            if self._writer is None:
                self._writer = iio2.get_writer(
                    self._tmp, format="FFMPEG", fps=self.fps, codec="libx264", quality=7,
                    pixelformat="yuv420p", macro_block_size=2, ffmpeg_log_level="error",
                )
            self._writer.append_data(frame)
        self.num_frames += 1

    def close(self, success: bool = True) -> None:
        try:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                if success:
                    writer.close()
                else:  # discarded: the encoder may already be gone (Ctrl-C reaches ffmpeg too)
                    with contextlib.suppress(Exception):
                        writer.close()
            if success and self.path.suffix.lower() == _GIF and self._frames_gif:
                iio.imwrite(self._tmp, np.stack(self._frames_gif), extension=".gif", duration=1000.0 / self.fps, loop=0)
            if success:
                if self.num_frames == 0:
                    raise FommError(f"no frames were written to {self.path}")
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp.exists():
                self._tmp.unlink()
            if not self.path.exists():
                remove_empty_folders(self._created)

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(success=exc_type is None)
