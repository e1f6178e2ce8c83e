"""Frames of a grey video as one plane: the same pixels as their RGB conversion, a third of the work.

Many laboratory videos are grey (infrared and monochrome cameras) but stored as YUV with neutral
chroma. Their RGB conversion gives R = G = B, a function of the luma alone; converting the whole
frame to RGB, and then reducing, cropping and resizing three equal channels, triples the work of
every stage after decoding. :class:`GreyConverter` hands out such a frame as one uint8 plane
``(H, W)`` holding that grey level, taken from a lookup table that swscale itself fills (a ramp of
every luma value in the frame's own pixel format, colour space and range, converted exactly as
:func:`fomm_kp.decoding.rgb_pixels` converts frames) and checked, once, against the full conversion
of a real frame of the video: the pixels are the same, bit for bit. A frame whose chroma is not
neutral, a pixel format other than 8-bit planar YUV or grey, or a table that does not reproduce the
conversion: the frame comes as RGB ``(H, W, 3)`` as before.

Stages that take frames accept both shapes: a grey frame ``(H, W)`` stands for the RGB frame
``(H, W, 3)`` with three equal channels (:func:`as_rgb` makes it).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Callable

import av
import numpy as np

__all__ = ["GreyConverter", "NEUTRAL", "as_rgb"]

log = logging.getLogger(__name__)

NEUTRAL = 128  # the chroma value of grey in 8-bit YUV (both ranges)
PLANAR_FORMATS = ("gray", "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv440p", "yuvj440p", "yuv444p", "yuvj444p")


def as_rgb(frame: np.ndarray) -> np.ndarray:
    """RGB ``(H, W, 3)`` of a grey frame ``(H, W)`` (three equal channels); an RGB frame as it is."""
    return np.repeat(frame[:, :, None], 3, axis=2) if frame.ndim == 2 else frame


def plane_pixels(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """uint8 ``(height, width)`` view of one plane of a decoded frame (without the row padding)."""
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, :plane.width]


def _neutral(plane: av.video.plane.VideoPlane) -> bool:
    """Whether every chroma sample of ``plane`` is :data:`NEUTRAL` (eight bytes at a time when the rows are unpadded)."""
    data = np.frombuffer(plane, np.uint8)
    if plane.line_size == plane.width and data.size % 8 == 0:
        return bool(np.all(data.view(np.uint64) == np.uint64(0x8080808080808080)))
    return bool(np.all(plane_pixels(plane) == NEUTRAL))


def _key(frame: av.VideoFrame) -> tuple:
    return frame.format.name, frame.colorspace, frame.color_range


class GreyConverter:
    """Call it on each decoded frame: the grey plane ``(H, W)`` where the frame is grey, else
    ``convert(frame)`` (RGB ``(H, W, 3)``). ``convert`` is the RGB conversion the grey levels must
    equal (:func:`fomm_kp.decoding.rgb_pixels`)."""

    def __init__(self, convert: Callable[[av.VideoFrame], np.ndarray]) -> None:
        self.convert = convert
        self.tables: dict[tuple, np.ndarray | None] = {}
        self.grey = 0  # frames handed out as grey planes
        self.rgb = 0

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        table = self._table(frame) if self._is_grey(frame) else None
        if table is None:
            self.rgb += 1
            return self.convert(frame)
        self.grey += 1
        return _looked_up(table, frame.planes[0])

    @staticmethod
    def _is_grey(frame: av.VideoFrame) -> bool:
        return frame.format.name in PLANAR_FORMATS and all(_neutral(plane) for plane in frame.planes[1:3])

    def _table(self, frame: av.VideoFrame) -> np.ndarray | None:
        """The lookup for this frame's format, colour space and range; built and checked on the first grey frame."""
        key = _key(frame)
        if key not in self.tables:
            self.tables[key] = self._checked_table(frame)
        return self.tables[key]

    def _checked_table(self, frame: av.VideoFrame) -> np.ndarray | None:
        table = self._ramp_table(frame)
        if table is None:
            return None
        rgb = self.convert(frame)
        grey = _looked_up(table, frame.planes[0])
        if rgb.shape[:2] != grey.shape or not all(np.array_equal(rgb[:, :, c], grey) for c in range(3)):
            log.info("grey frames of %s, %s: the lookup does not reproduce the RGB conversion; converting to RGB", *_key_text(frame))
            return None
        log.debug("grey frames of %s, %s: handled on their luma plane", *_key_text(frame))
        return table

    def _ramp_table(self, frame: av.VideoFrame) -> np.ndarray | None:
        """Grey level of every luma value 0..255: a 16 x 16 ramp in the frame's format, colour space
        and range, converted as frames are; None when the ramp's channels are not equal."""
        ramp = av.VideoFrame(16, 16, frame.format.name)
        ramp.colorspace, ramp.color_range = frame.colorspace, frame.color_range
        for index, plane in enumerate(ramp.planes):
            pixels = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            pixels[:] = NEUTRAL
            if index == 0:
                pixels[:, :16] = np.arange(256, dtype=np.uint8).reshape(16, 16)
        rgb = self.convert(ramp).reshape(256, 3)
        if not (np.array_equal(rgb[:, 0], rgb[:, 1]) and np.array_equal(rgb[:, 0], rgb[:, 2])):
            return None
        return np.ascontiguousarray(rgb[:, 0])


@lru_cache(maxsize=4)
def _cached_pairs(table: bytes) -> np.ndarray:
    pairs = np.arange(65536, dtype=np.uint16).view(np.uint8)
    return np.take(np.frombuffer(table, np.uint8), pairs).view(np.uint16)


def _pair_table(table: np.ndarray) -> np.ndarray:
    """uint16 ``(65536,)``: the lookup of two adjacent bytes at once (whatever the byte order:
    built from the bytes of every uint16), which halves the lookups of a plane."""
    return _cached_pairs(table.tobytes())


def _looked_up(table: np.ndarray, plane: av.video.plane.VideoPlane) -> np.ndarray:
    """uint8 ``(height, width)``: every pixel of ``plane`` through ``table`` (uint8 ``(256,)``),
    two at a time through its :func:`_pair_table` when the rows have an even width."""
    pixels = plane_pixels(plane)
    if plane.width % 2:
        return np.take(table, pixels)
    pairs = np.ascontiguousarray(pixels).view(np.uint16)
    return np.take(_pair_table(table), pairs).view(np.uint8)


def _key_text(frame: av.VideoFrame) -> tuple[str, str]:
    return frame.format.name, f"colour space {frame.colorspace}, range {frame.color_range}"
