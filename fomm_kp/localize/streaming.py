"""The boxes of :func:`~fomm_kp.localize.boxes.boxes_for_video`, handed out while the frames stream in.

Offline boxes are smoothed forwards and backwards in time, so a frame's box depends on frames after
it. But only on a few: the running median and the Gaussian read :func:`~fomm_kp.localize.smoothing.reach`
frames either side, the heading's direction votes over ``vote_frames`` more, and a gap is filled
from the detections on both sides of it. :class:`StreamingBoxes` takes one detection per frame and
gives out each box as soon as nothing that follows can change it, computed with the same functions
on a window of the track that holds everything the box depends on. The boxes are the same as the
whole-video computation, bit for bit, so tracking can localise and detect in one decoding pass while
keeping only a few dozen frames in memory.

Frames where the subject was not found need no box (their keypoints are missing) and are handed
out as None as soon as the frames before them are. :func:`stream_boxes` runs this over a video:
frames decoded on a thread, each localised as :func:`~fomm_kp.localize.boxes.boxes_for_video` does
(the frame's foreground found on the decoding thread, the subject chosen among its parts on the
caller's, which knows where it was), the boxes handed out with their frames.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import Callable, Iterator

import numpy as np

from fomm_kp.config import LocalizeConfig
from fomm_kp.decoding import Prefetch, decoded_frames
from fomm_kp.errors import FommError
from fomm_kp.localize.background import Background, reduce_frame
from fomm_kp.localize.blobs import Blob, choose_subject, foreground_parts
from fomm_kp.localize.boxes import square_boxes
from fomm_kp.localize.smoothing import heading_axes, heading_votes, make_continuous, reach, smooth_centres, vote_tally
from fomm_kp.video import FrameRange, probe

__all__ = ["StreamingBoxes", "stream_boxes"]

log = logging.getLogger(__name__)

VOTE_FRAMES = 25  # as smooth_headings votes
TAKE_EVERY = 32  # frames between two looks for final boxes while streaming


class _Column:
    """A growing float64 array ``(n, *shape)`` with amortised appends."""

    def __init__(self, *shape: int) -> None:
        self.data = np.zeros((64, *shape))
        self.size = 0

    def append(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.float64).reshape((-1,) + self.data.shape[1:])
        while self.size + len(rows) > len(self.data):
            self.data = np.concatenate([self.data, np.zeros_like(self.data)])
        self.data[self.size:self.size + len(rows)] = rows
        self.size += len(rows)

    @property
    def values(self) -> np.ndarray:
        return self.data[:self.size]


class StreamingBoxes:
    """Boxes of side ``side`` (turned to the heading when ``aligned``) from detections given one frame
    at a time: :meth:`push` each frame's :class:`Blob` (None: not found), then :meth:`take` the
    boxes that are final, in frame order (``end=True`` once the last frame was pushed)."""

    def __init__(self, width: int, height: int, side: int, aligned: bool, config: LocalizeConfig = LocalizeConfig()) -> None:
        self.width, self.height, self.side, self.aligned = width, height, int(side), aligned
        self.sigma = config.smooth_sigma
        self.reach = reach(self.sigma)
        self.margin = self.reach + VOTE_FRAMES + 2  # rows before the first open row a window starts
        self.centres = _Column(2)
        self.headings = _Column()
        self.found = _Column()
        self.last_found = self.last_heading = -1
        self.done = 0  # rows handed out
        self.vectors = _Column(2)  # final, continuous axis vectors of the first rows
        self.votes = _Column()  # and their direction votes

    def __len__(self) -> int:
        return self.found.size

    def push(self, blob: Blob | None) -> None:
        row = len(self)
        heading = np.nan if blob is None else blob.heading
        self.centres.append([np.nan, np.nan] if blob is None else blob.centre)
        self.headings.append([heading])
        self.found.append([blob is not None])
        if blob is not None:
            self.last_found = row
            if np.isfinite(heading):
                self.last_heading = row

    def take(self, end: bool = False) -> list[np.ndarray | None]:
        """Boxes ``(4,)`` or ``(5,)`` (None: no subject) of the rows that became final, in order."""
        n = len(self)
        final = n - 1 if end else self.last_found - self.reach
        if self.aligned and not end:
            final = min(final, self.last_heading - self.reach - VOTE_FRAMES)
        if final < self.done:
            return []
        found = self.found.values.astype(bool)
        start = self._window_start()
        rows = np.arange(self.done, final + 1)
        boxes: list[np.ndarray | None] = [None] * len(rows)
        if found[rows].any():
            centres = smooth_centres(self.centres.values[start:], found[start:], self.sigma)[rows - start]
            square = square_boxes(centres, self.side, self.width, self.height).astype(np.float64)
            if self.aligned:
                angles = self._angles(start, final, end).astype(np.float32).astype(np.float64)
                square = np.concatenate([square, angles[:, None]], axis=1)
            boxes = [square[i] if found[row] else None for i, row in enumerate(rows)]
        self.done = final + 1
        return boxes

    def _window_start(self) -> int:
        """A row at or before ``done - margin`` where both the subject and its heading were found
        (0 if none): gaps after it are filled from the same two detections as in the whole track."""
        limit = self.done - self.margin
        if limit <= 0:
            return 0
        found = self.found.values[:limit + 1].astype(bool)
        with_heading = found & np.isfinite(self.headings.values[:limit + 1])
        starts = [int(np.nonzero(mask)[0][-1]) if mask.any() else 0 for mask in (found, with_heading)]
        return min(starts)

    def _angles(self, start: int, final: int, end: bool) -> np.ndarray:
        """Headings of rows ``done..final`` as :func:`~fomm_kp.localize.smoothing.smooth_headings`
        gives them for the whole track."""
        headings = self.headings.values
        has_heading = self.found.values.astype(bool) & np.isfinite(headings)
        if not has_heading.any():
            return np.zeros(final + 1 - self.done)
        n = len(self)
        settled = n - 1 if end else self.last_heading - self.reach  # rows whose axis is final
        first = self.vectors.size
        if settled >= first:
            axes = heading_axes(headings[start:], has_heading[start:], self.sigma)[first - start:settled + 1 - start]
            previous = self.vectors.values[-1] if first else None
            make_continuous(axes, previous)
            self.vectors.append(axes)
            self.votes.append(heading_votes(axes, headings[first:settled + 1], has_heading[first:settled + 1]))
        tally = vote_tally(self.votes.values, VOTE_FRAMES, total=n)[self.done:final + 1]
        vectors = self.vectors.values[self.done:final + 1] * np.sign(tally)[:, None]
        return np.arctan2(vectors[:, 1], vectors[:, 0])


def _analysed_frames(video: str | os.PathLike, background: Background, config: LocalizeConfig,
                     ) -> Iterator[tuple[int, np.ndarray, tuple]]:
    """``(index, frame, its foreground parts)`` of every frame (run on the decoding thread: the
    parts do not depend on the frames before); a grey video's frames come as their grey plane
    (:mod:`fomm_kp.grey`)."""
    for index, frame in decoded_frames(video, grey=True):
        yield index, frame, foreground_parts(reduce_frame(frame, background.factor), background, config)


def stream_boxes(video: str | os.PathLike, background: Background, config: LocalizeConfig, side: int, aligned: bool,
                 frames: FrameRange = FrameRange(), keep: Callable[[int], bool] | None = None,
                 ) -> Iterator[tuple[int, np.ndarray | None, np.ndarray | None]]:
    """``(index, frame, box)`` of the frames of ``frames``, localised exactly as
    :func:`~fomm_kp.localize.boxes.boxes_for_video` with ``side`` (then ``crop_boxes(aligned)``) would,
    in one decoding pass. ``box`` is None where the subject was not found, and ``frame`` too unless
    ``keep(index)`` (frames waiting for their box are held in memory: only those that are needed)."""
    info = probe(video)
    if (background.frame_width, background.frame_height) != (info.width, info.height):
        raise FommError(f"background size {background.frame_width}x{background.frame_height} differs from the "
                        f"video's {info.width}x{info.height} ({video})")
    wanted = frames.indices(info.num_frames)
    last_wanted = wanted[-1] if len(wanted) else -1
    stream = StreamingBoxes(info.width, info.height, side, aligned, config)
    pending: deque[tuple[int, np.ndarray | None]] = deque()
    previous: np.ndarray | None = None
    with Prefetch(_analysed_frames(video, background, config), size=16, name="decode") as decoded:
        for index, frame, parts in decoded:
            blob = choose_subject(parts, background, config, previous, float(side))
            previous = previous if blob is None else blob.centre
            stream.push(blob)
            needed = index in wanted and (blob is not None or (keep is not None and keep(index)))
            pending.append((index, frame if needed else None))
            if len(stream) % TAKE_EVERY == 0:  # a window's smoothing serves many boxes at once
                yield from _handed_out(pending, stream.take(), wanted)
                if stream.done > last_wanted:
                    return
    found = int(stream.found.values.sum())
    log.info("localised the subject in %d of %d frames of %s; box side %d px", found, len(stream), video, side)
    yield from _handed_out(pending, stream.take(end=True), wanted)


def _handed_out(pending: deque, boxes: list[np.ndarray | None], wanted: range) -> Iterator[tuple]:
    for box in boxes:
        index, frame = pending.popleft()
        if index in wanted:
            yield index, frame, box
