"""The empty scene: a median background of frames reduced by an integer block-mean factor.

All localisation works on frames reduced so that their longer side is about
``LocalizeConfig.work_size`` pixels, streaming, so memory stays constant on long videos.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fomm_kp.config import LocalizeConfig
from fomm_kp.errors import FommError
from fomm_kp.decoding import decoded_frames, sampled_frames
from fomm_kp.video import FrameRange, iter_frames, probe, resize_frame

__all__ = ["Background", "work_factor", "reduce_frame", "background_from_frames", "sample_reduced", "estimate_background"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Background:
    """A median background at work resolution.

    Attributes:
        image: float32 ``(h, w, 3)``, the frame reduced by ``factor`` (block means), 0–255.
        factor: integer reduction factor; work pixel ``(i, j)`` covers frame pixels
            ``[i*factor, (i+1)*factor)`` × ``[j*factor, (j+1)*factor)``.
        frame_width, frame_height: size of the original frames.
        samples: float32 ``(n, h, w, 3)`` the reduced frames the median was taken over, when it
            came from a video (lets :func:`decide` judge them without reading the video again).
        source: the video or folder it was estimated from ("" for frames given in memory).
    """

    image: np.ndarray
    factor: int
    frame_width: int
    frame_height: int
    samples: np.ndarray | None = None
    source: str = ""

    def scene(self) -> np.ndarray:
        """The empty scene at the frames' own resolution: uint8 ``(H, W, 3)``, enlarged from work
        resolution (smooth: finer detail than a work pixel is not known)."""
        image = np.clip(np.round(self.image), 0, 255).astype(np.uint8)
        return resize_frame(image, (self.frame_width, self.frame_height))


def work_factor(width: int, height: int, config: LocalizeConfig) -> int:
    """Integer block-mean factor that brings the longer side near ``config.work_size``."""
    return max(1, int(round(max(width, height) / config.work_size)))


def reduce_frame(frame: np.ndarray, factor: int) -> np.ndarray:
    """Block-mean reduction of a uint8 ``(H, W, 3)`` frame → float32 ``(H//factor, W//factor, 3)``.

    Rows and columns beyond a multiple of ``factor`` are dropped (at most ``factor - 1`` pixels).
    A grey frame ``(H, W)`` (see :mod:`fomm_kp.grey`) is reduced once and its result given to the
    three channels: the same values as its RGB frame's, a third of the work.
    """
    frame = np.asarray(frame)
    if frame.ndim == 2:
        return np.repeat(reduce_frame(frame[:, :, None], factor), 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (1, 3):
        raise FommError(f"expected a frame of shape (H, W, 3), got {frame.shape}")
    if factor == 1:
        return frame.astype(np.float32)
    h, w, channels = frame.shape[0] // factor, frame.shape[1] // factor, frame.shape[2]
    if h < 1 or w < 1:
        raise FommError(f"frame {frame.shape[:2]} is smaller than the reduction factor {factor}")
    dtype = np.uint32 if factor > 16 else np.uint16
    # Sum the factor rows of each block (contiguous runs), then the factor columns: exact integer
    # sums, far faster than a mean over a reshaped view or strided sums over the whole frame.
    rows = frame[: h * factor, : w * factor].reshape(h, factor, w * factor * channels)
    total = np.add(rows[:, 0], rows[:, 1], dtype=dtype) if factor > 1 else rows[:, 0].astype(dtype)
    for dy in range(2, factor):
        np.add(total, rows[:, dy], out=total)
    blocks = total.reshape(h, w, factor, channels)
    summed = blocks[:, :, 0].copy()
    for dx in range(1, factor):
        np.add(summed, blocks[:, :, dx], out=summed)
    reduced = summed.astype(np.float32)
    reduced *= np.float32(1.0 / (factor * factor))
    return reduced


def background_from_frames(frames: np.ndarray | Sequence[np.ndarray], config: LocalizeConfig = LocalizeConfig()) -> Background:
    """Median background of uint8 frames ``(T, H, W, 3)`` (all of them; sample beforehand)."""
    frames_list = list(frames)
    if len(frames_list) == 0:
        raise FommError("cannot estimate a background from zero frames")
    height, width = frames_list[0].shape[:2]
    factor = work_factor(width, height, config)
    reduced = np.stack([reduce_frame(f, factor) for f in frames_list])
    if len(frames_list) < 3:
        log.warning("background from only %d frames: a subject that moves little will be part of it", len(frames_list))
    return Background(np.median(reduced, axis=0).astype(np.float32), factor, width, height)


def _sample_stride(num_frames: int, num_samples: int) -> int:
    return max(1, num_frames // num_samples)


def sample_reduced(path: str | os.PathLike, config: LocalizeConfig, num_samples: int) -> tuple[list[np.ndarray], int, int, int]:
    """Up to ``num_samples`` frames spread evenly over a video, reduced: (frames, factor, width, height).

    Every ``stride``-th frame is a candidate and ``num_samples`` of them are picked evenly; only the
    picked ones are converted to RGB (decoding the others is cheaper than converting them), and the
    frames no other frame refers to are not decoded at all unless picked
    (:func:`fomm_kp.decoding.sampled_frames`, when the video's timestamps number its frames)."""
    info = probe(path)
    factor = work_factor(info.width, info.height, config)
    stride = _sample_stride(info.num_frames, num_samples)
    candidates = np.arange(0, info.num_frames, stride)
    keep = candidates[_evenly(len(candidates), num_samples)]
    sampled = sampled_frames(path, keep, grey=True)
    if sampled is not None:  # exactly the frames of keep, or None
        return [reduce_frame(frame, factor) for _, frame in sampled], factor, info.width, info.height
    reduced, count = [], 0
    for _, frame in decoded_frames(path, FrameRange(stride=stride), keep=keep, grey=True):
        count += 1
        if frame is not None:
            reduced.append(reduce_frame(frame, factor))
    if count != len(candidates):  # the decoder disagrees with the packet count: pick among what it gave
        log.info("%s decodes to %d candidate frames, not %d: sampling them again", path, count, len(candidates))
        every = [reduce_frame(frame, factor) for _, frame in iter_frames(path, stride=stride)]
        reduced = [every[i] for i in _evenly(len(every), num_samples)]
    if not reduced:
        raise FommError(f"no frames read from {path} for the background")
    return reduced, factor, info.width, info.height


def _evenly(count: int, num_samples: int) -> np.ndarray:
    """Indices of ``min(num_samples, count)`` items spread evenly over ``count`` (first and last included)."""
    if count == 0:
        return np.zeros(0, dtype=int)
    return np.unique(np.round(np.linspace(0, count - 1, min(num_samples, count))).astype(int))


def estimate_background(
    path: str | os.PathLike, config: LocalizeConfig = LocalizeConfig(), num_samples: int | None = None
) -> Background:
    """Median of ``num_samples`` (default ``config.background_samples``) frames spread evenly over a
    video or image folder.

    A subject that rests in one place for more than half the sampled frames becomes part of the
    background and is then not found there; spread the samples over a long enough stretch.
    """
    num_samples = config.background_samples if num_samples is None else num_samples
    samples, factor, width, height = sample_reduced(path, config, num_samples)
    log.info("background of %s: median of %d frames, reduced by %d", path, len(samples), factor)
    stacked = np.stack(samples)
    return Background(np.median(stacked, axis=0).astype(np.float32), factor, width, height, stacked, str(path))
