"""Frames decoded on a background thread: the hand-over queue, and PyAV decoding of a file.

Offline tracking and live streams share these pieces. :class:`Prefetch` runs any iterator on a
thread and hands its items over through a bounded queue: with ``drop_oldest`` (live) a full queue
loses its oldest item, so the consumer always gets recent frames and latency stays bounded; without
it (offline) the producer waits and nothing is lost. PyAV releases the GIL while it decodes and
converts pixels, so decoding on a thread uses a second core while the caller localises and detects.

:func:`decoded_frames` reads a video file with PyAV directly (frame threading, RGB conversion only
of the frames asked for); its frames are the same as :func:`fomm_kp.video.iter_frames` gives (both
convert with ``VideoFrame.reformat(format="rgb24")``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path
from typing import Generic, Iterable, Iterator, TypeVar

import av
import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.grey import GreyConverter
from fomm_kp.video import IMAGE_SUFFIXES, FrameRange, iter_frames

__all__ = ["Prefetch", "decoded_frames", "decodes_with_pyav", "rgb_pixels", "sampled_frames"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_END = object()


class _Failure:
    """An exception raised on the producer thread, handed to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetch(Generic[T]):
    """Iterate ``items`` on a background thread; iterate this object to receive them.

    ``size`` bounds the queue. With ``drop_oldest`` a full queue drops its oldest item (counted in
    :attr:`dropped`) instead of making the producer wait. An exception in the producer is raised
    in the consumer; :meth:`close` (or leaving a ``with`` block) stops the producer at its next item.
    """

    def __init__(self, items: Iterable[T], size: int = 8, drop_oldest: bool = False, name: str = "prefetch") -> None:
        if size < 1:
            raise FommError(f"queue size must be at least 1, got {size}")
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._drop_oldest = drop_oldest
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._produce, args=(items,), name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object, final: bool = False) -> bool:
        """Hand one item over; False when the consumer has stopped listening."""
        while not self._stop.is_set():
            if self._drop_oldest and not final:
                with self._lock:
                    try:
                        self._queue.put_nowait(item)
                        return True
                    except queue.Full:
                        try:
                            self._queue.get_nowait()
                            self.dropped += 1
                        except queue.Empty:
                            pass
                continue
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, items: Iterable[T]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(_Failure(exc), final=True)
            return
        finally:
            close = getattr(items, "close", None)
            if callable(close) and self._stop.is_set():
                close()
        self._put(_END, final=True)

    def get(self, timeout: float | None = None) -> T:
        """The next item; raises :class:`StopIteration` at the end and :class:`queue.Empty` after
        ``timeout`` seconds without one."""
        item = self._queue.get(timeout=timeout)
        if item is _END:
            self._queue.put(_END)  # later calls see the end too
            raise StopIteration
        if isinstance(item, _Failure):
            raise item.error
        return item

    def __iter__(self) -> Iterator[T]:
        while True:
            try:
                yield self.get()
            except StopIteration:
                return

    def close(self) -> None:
        """Stop the producer (at its next item) and wait briefly for it."""
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "Prefetch[T]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def decodes_with_pyav(path: str | os.PathLike) -> bool:
    """Whether :func:`decoded_frames` decodes ``path`` with PyAV itself (video files other than GIF)."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES + (".gif",)


def decoded_frames(path: str | os.PathLike, frames: FrameRange = FrameRange(), keep: np.ndarray | None = None,
                   grey: bool = False) -> Iterator[tuple[int, np.ndarray | None]]:
    """``(frame index, uint8 RGB frame (H, W, 3))`` of the frames of ``frames``, decoded by PyAV with
    frame threading.

    ``keep``: a sorted array of frame indices; only those are converted to RGB, the others are
    decoded (to keep the decoder in step) and yielded as ``None`` — a pass that needs a few frames
    of a video skips the conversion, which costs more than decoding. ``grey``: frames of neutral
    colour come as their grey plane ``(H, W)`` (R = G = B, the same pixels: :mod:`fomm_kp.grey`),
    for callers whose stages take both shapes. Image folders and GIFs are read with
    :func:`fomm_kp.video.iter_frames`.
    """
    if not decodes_with_pyav(path):
        wanted = None if keep is None else set(np.asarray(keep).tolist())
        for index, frame in iter_frames(path, start=frames.start, stop=frames.stop, stride=frames.stride):
            yield index, frame if wanted is None or index in wanted else None
        return
    convert = GreyConverter(rgb_pixels) if grey else rgb_pixels
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                if frames.stop is not None and index >= frames.stop:
                    break
                if index < frames.start or (index - frames.start) % frames.stride:
                    continue
                wanted = keep is None or _contains(keep, index)
                yield index, convert(frame) if wanted else None
    except FommError:
        raise
    except (av.error.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise FommError(f"cannot read video {path}: {exc.__class__.__name__}: {exc}") from exc


def sampled_frames(path: str | os.PathLike, indices: np.ndarray, grey: bool = False,
                   ) -> list[tuple[int, np.ndarray]] | None:
    """``(frame index, frame)`` of the frames at ``indices`` (sorted) of a video file, decoding less:
    the packets of the other frames are decoded with the decoder skipping non-reference frames
    (no other frame depends on them), the wanted ones in full. Frames are numbered by the rank of
    their timestamp among all the stream's packets, which is their order in the video. None when
    that numbering cannot be trusted (packets without timestamps, repeated timestamps, a decoder
    that gave a wanted frame no timestamp or not at all): decode every frame then
    (:func:`decoded_frames` with ``keep``). ``grey`` as for :func:`decoded_frames`."""
    if not decodes_with_pyav(path):
        return None
    convert = GreyConverter(rgb_pixels) if grey else rgb_pixels
    try:
        order = _presentation_order(path)
        if order is None or len(indices) == 0 or int(indices[-1]) >= len(order):
            return None
        wanted = set(order[np.asarray(indices)].tolist())
        with av.open(str(path)) as container:
            found = _decode_wanted(container, wanted, order, convert)
    except (av.error.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise FommError(f"cannot read video {path}: {exc.__class__.__name__}: {exc}") from exc
    return None if len(found) != len(wanted) else sorted(found.items())


def _presentation_order(path: str | os.PathLike) -> np.ndarray | None:
    """Sorted timestamps of every packet of the first video stream; None if one has none or two share one."""
    with av.open(str(path)) as container:
        stamps = [packet.pts for packet in container.demux(container.streams.video[0]) if packet.size]
    if not stamps or any(stamp is None for stamp in stamps):
        return None
    order = np.sort(np.asarray(stamps, dtype=np.int64))
    return order if np.all(np.diff(order) > 0) else None


def _decode_wanted(container: av.container.InputContainer, wanted: set, order: np.ndarray, convert,
                   ) -> dict[int, np.ndarray]:
    """Frames (by index) whose timestamps are ``wanted``, skipping the decoding of other non-reference frames."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    context = stream.codec_context
    found: dict[int, np.ndarray] = {}
    for packet in container.demux(stream):
        context.skip_frame = "DEFAULT" if packet.pts in wanted or not packet.size else "NONREF"
        for frame in context.decode(packet):
            if frame.pts in wanted:
                found[int(np.searchsorted(order, frame.pts))] = convert(frame)
    return found


def rgb_pixels(frame: av.VideoFrame) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB of a decoded frame, converted as :func:`fomm_kp.video.iter_frames`
    converts it, on one thread (less CPU than swscale's own threads, the same pixels; older PyAV
    releases have no ``threads`` argument)."""
    try:
        return frame.to_ndarray(format="rgb24", threads=1)
    except TypeError:
        return frame.to_ndarray(format="rgb24")


def _contains(sorted_indices: np.ndarray, index: int) -> bool:
    at = int(np.searchsorted(sorted_indices, index))
    return at < len(sorted_indices) and int(sorted_indices[at]) == index
