"""Following the subject frame by frame without seeing the future: live streams and ``track --localize online``.

Offline localisation takes a median background of frames spread over the whole video and smooths
box centres and headings forwards and backwards in time (:mod:`fomm_kp.localize.boxes`). A live
stream has neither. Here the background is either given (an image or a video of the scene) or a
running median of frames sampled every ``sample_seconds`` (the last ``samples`` of them, so it
follows slow changes of light); until it holds ``warmup`` samples, the empty scene a localised model
keeps from its training video stands in for it (when the frames have that video's size), and
without one nothing is looked for. Each
frame's subject is found against it exactly as offline (:func:`fomm_kp.localize.blobs.find_in_reduced`,
preferring the candidate near the last one), its centre and heading are smoothed causally
(exponential weights), and the heading's direction follows the majority of the last
``vote_frames`` frames' cues, a one-sided version of the offline vote.

The same frames give the same boxes wherever this runs, so a live stream and ``track --localize
online`` of the same video agree frame for frame.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from fomm_kp.config import LocalizeConfig
from fomm_kp.errors import FommError
from fomm_kp.localize.background import Background, reduce_frame, work_factor
from fomm_kp.localize.blobs import Blob, find_in_reduced
from fomm_kp.localize.boxes import square_boxes
from fomm_kp.settings import check, integer, number

__all__ = ["OnlineConfig", "RunningBackground", "OnlineLocalizer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnlineConfig:
    """How the subject is followed without the future.

    Attributes:
        sample_seconds: a frame joins the running background every this many seconds of stream.
        samples: the running background is the median of the last this many samples.
        warmup: the subject is looked for once the background holds this many samples (before
            that, frames report no subject).
        smoothing: weight of the newest centre and heading in their running means (1: none).
        vote_frames: the heading's direction is the majority of this many recent frames' cues.
        forget_frames: after this many frames without the subject, the next one may be anywhere.
    """

    sample_seconds: float = 1.0
    samples: int = 48
    warmup: int = 5
    smoothing: float = 0.5
    vote_frames: int = 25
    forget_frames: int = 30

    def __post_init__(self) -> None:
        check(self, sample_seconds=number(above=0.0), samples=integer(1, 10_000), warmup=integer(1, 10_000),
              smoothing=number(above=0.0, high=1.0), vote_frames=integer(1), forget_frames=integer(1))
        if self.warmup > self.samples:
            raise FommError(f"warmup ({self.warmup}) cannot exceed samples ({self.samples})")


class RunningBackground:
    """A median background that a stream builds as it goes, or a fixed one given up front.

    :meth:`offer` takes each reduced frame with its number; every ``every`` frames one joins the
    samples (the oldest leaves past ``size``) and the median is taken again. :attr:`current` is
    ``initial`` (None: nothing) until ``warmup`` samples are in.
    """

    def __init__(self, width: int, height: int, factor: int, every: int, size: int, warmup: int,
                 fixed: Background | None = None, initial: Background | None = None) -> None:
        self.width, self.height, self.factor = width, height, factor
        self.every, self.warmup = max(1, int(every)), warmup
        self.samples: deque[np.ndarray] = deque(maxlen=size)
        self.next_index = 0
        self.current = fixed or initial
        self.fixed = fixed is not None

    def offer(self, index: int, reduced: np.ndarray) -> None:
        if self.fixed or index < self.next_index:
            return
        self.samples.append(reduced)
        self.next_index = index + self.every
        if len(self.samples) >= self.warmup:
            image = np.median(np.stack(self.samples), axis=0).astype(np.float32)
            self.current = Background(image, self.factor, self.width, self.height)


class OnlineLocalizer:
    """Square boxes of side ``side`` that follow the subject in frames handed over one at a time,
    against ``background`` when given, else a running background that ``initial`` (e.g. the empty
    scene the model was trained against) stands in for until it is warm.

    :meth:`update` returns the box ``(4,)`` ``x0, y0, x1, y1`` (``(5,)`` with the angle that turns
    the crop to the heading when ``aligned``), or None where no subject is found.
    """

    def __init__(self, width: int, height: int, side: int, aligned: bool, fps: float,
                 config: LocalizeConfig = LocalizeConfig(), online: OnlineConfig = OnlineConfig(),
                 background: Background | None = None, initial: Background | None = None) -> None:
        if side < 1:
            raise FommError(f"box side must be at least 1 pixel, got {side}")
        factor = work_factor(width, height, config) if background is None else background.factor
        if background is not None and (background.frame_width, background.frame_height) != (width, height):
            raise FommError(f"the background is {background.frame_width}x{background.frame_height} but the "
                            f"frames are {width}x{height}")
        if initial is not None and (initial.frame_width, initial.frame_height, initial.factor) != (width, height, factor):
            initial = None  # a scene of frames of another size cannot stand in
        self.width, self.height, self.side, self.aligned = width, height, int(side), aligned
        self.config, self.online = config, online
        every = max(1, int(round(online.sample_seconds * fps)))
        self.background = RunningBackground(width, height, factor, every, online.samples, online.warmup, background,
                                            initial)
        self.previous: np.ndarray | None = None  # raw centre of the last detection
        self.centre: np.ndarray | None = None  # smoothed centre
        self.doubled: np.ndarray | None = None  # smoothed (cos 2h, sin 2h) of the heading
        self.vector: np.ndarray | None = None  # the heading's direction last frame
        self.cues: deque[np.ndarray] = deque(maxlen=online.vote_frames)
        self.missed = 0

    def update(self, index: int, frame: np.ndarray) -> np.ndarray | None:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[:2] != (self.height, self.width):
            raise FommError(f"frame of shape {frame.shape} in a {self.width}x{self.height} stream")
        reduced = reduce_frame(frame, self.background.factor)
        self.background.offer(index, reduced)
        background = self.background.current
        if background is None:
            return None
        blob = find_in_reduced(reduced, background, self.config, self.previous, float(self.side))
        if blob is None:
            self.missed += 1
            if self.missed >= self.online.forget_frames:
                self.previous = None
            return None
        self.missed = 0
        self.previous = blob.centre
        box = square_boxes(self._smooth_centre(blob)[None], self.side, self.width, self.height)[0].astype(np.float64)
        if not self.aligned:
            return box
        return np.append(box, self._heading(blob))

    def _smooth_centre(self, blob: Blob) -> np.ndarray:
        raw = blob.centre.astype(np.float64)
        a = self.online.smoothing
        self.centre = raw if self.centre is None else a * raw + (1.0 - a) * self.centre
        return self.centre

    def _heading(self, blob: Blob) -> float:
        """The smoothed heading (radians): the axis from a running mean of doubled angles, kept
        continuous, pointed the way most recent cues point."""
        if not np.isfinite(blob.heading):
            return 0.0 if self.vector is None else float(np.arctan2(self.vector[1], self.vector[0]))
        cue = np.array([np.cos(blob.heading), np.sin(blob.heading)])
        doubled = np.array([np.cos(2 * blob.heading), np.sin(2 * blob.heading)])
        a = self.online.smoothing
        self.doubled = doubled if self.doubled is None else a * doubled + (1.0 - a) * self.doubled
        axis = np.arctan2(self.doubled[1], self.doubled[0]) / 2.0
        vector = np.array([np.cos(axis), np.sin(axis)])
        if self.vector is not None and vector @ self.vector < 0:
            vector = -vector
        self.cues.append(cue)
        if np.sum(np.sign(np.stack(self.cues) @ vector)) < 0:
            vector = -vector
        self.vector = vector
        return float(np.arctan2(vector[1], vector[0]))
