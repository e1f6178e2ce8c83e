"""The live loop: frames from a source → box → detector → keypoints → events, labels and bouts.

:func:`run_live` takes frames from a :class:`~fomm_kp.live.sources.FrameSource` as they arrive; each
is cut at its box (:func:`fomm_kp.localize.crop_rule.online_boxes`), run through the detector
(:func:`fomm_kp.runtime.pipeline.detect_at_boxes`, any backend) and written as a JSON line
(:mod:`fomm_kp.live.events`), optionally to a recording with keypoints drawn and to a window on
screen. With a classifier, a rolling window of keypoints is labelled every stride on a worker
thread (:mod:`fomm_kp.live.rolling`), so a slow label never holds up the next frame's keypoints.

Whatever ends the run — the end of the stream, a source that stays lost, Ctrl-C or an error — the
events file ends with complete lines (the last one says why it ended) and the recording is closed
and playable. Ctrl-C raises :class:`~fomm_kp.errors.Interrupted` after that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from fomm_kp.behaviour.classifiers import Classifier
from fomm_kp.errors import FommError, Interrupted
from fomm_kp.live.events import EventWriter, points_as_lists
from fomm_kp.live.rolling import BoutEvent, BoutTracker, KeypointSmoother, RollingWindow, WindowLabels, label_window
from fomm_kp.live.sources import FrameSource, LiveFrame
from fomm_kp.localize.crop_rule import FrameBoxes
from fomm_kp.runtime.detector import Detections, Detector
from fomm_kp.runtime.pipeline import detect_at_boxes
from fomm_kp.settings import FRACTION, check, integer, number
from fomm_kp.tracks import Tracks
from fomm_kp.viz import TrailOverlay

__all__ = ["LiveOptions", "LiveOutputs", "Status", "LiveSummary", "run_live"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveOptions:
    """Settings of a live run.

    Attributes:
        smoothing: weight of each frame's keypoints in their running mean (1: no smoothing).
        stride_seconds: seconds between labels (None: the classifier's feature stride).
        min_probability: a window whose top label is less probable counts as no behaviour (bouts).
        status_seconds: how often the status callback hears.
        max_frames: stop after this many frames (0: at the end of the stream).
        pending_labels: windows that may wait for the label worker; more are skipped (counted).
        keep_latencies: how many recent latencies the summary keeps (for medians and percentiles).
    """

    smoothing: float = 1.0
    stride_seconds: float | None = None
    min_probability: float = 0.0
    status_seconds: float = 1.0
    max_frames: int = 0
    pending_labels: int = 2
    keep_latencies: int = 200_000

    def __post_init__(self) -> None:
        check(self, smoothing=number(above=0.0, high=1.0), min_probability=FRACTION, status_seconds=number(above=0.0),
              max_frames=integer(0), pending_labels=integer(1), keep_latencies=integer(1))
        if self.stride_seconds is not None:
            check(self, stride_seconds=number(above=0.0))


@dataclass
class LiveOutputs:
    """Where a live run writes: the events, and optionally a recording and a window on screen
    (a callable taking each frame with its keypoints drawn)."""

    events: EventWriter
    recording: TrailOverlay | None = None
    display: Callable[[np.ndarray, np.ndarray], None] | None = None


class Status(NamedTuple):
    """How the run is going, over the last status period: frames/s, latency from a frame's arrival
    to its keypoints (median and 95th percentile, ms), and totals so far."""

    frames: int
    fps: float
    latency_ms: float
    latency_p95_ms: float
    dropped: int
    lost: int
    reconnects: int
    labels: int


class LiveSummary(NamedTuple):
    """The whole run: why it ended, frames processed, dropped (to keep up) and lost (never arrived),
    labelled windows and windows skipped (the label worker was busy), and recent latencies in
    seconds (arrival → keypoints, arrival of a window's last frame → its label)."""

    reason: str
    frames: int
    dropped: int
    lost: int
    labels: int
    skipped_windows: int
    keypoint_latencies: np.ndarray
    label_latencies: np.ndarray
    seconds: float


@dataclass
class _Labeller:
    """Windows labelled on a worker thread; it writes label and bout events itself."""

    clf: Classifier
    window: RollingWindow
    events: EventWriter
    bouts: BoutTracker
    options: LiveOptions
    latencies: deque
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="labels"))
    pending: deque = field(default_factory=deque)
    skipped: int = 0
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, frame: LiveFrame, detections: Detections) -> None:
        tracks = self.window.add(frame.index, detections)
        while self.pending and self.pending[0].done():
            self.pending.popleft().result()  # raises the worker's error, if any
        if tracks is None:
            return
        if len(self.pending) >= self.options.pending_labels:
            self.skipped += 1
            return
        self.pending.append(self.pool.submit(self._label, tracks, frame))

    def _label(self, tracks: Tracks, frame: LiveFrame) -> None:
        keypoints = points_as_lists(tracks.keypoints[-1, 0])
        span = [int(tracks.frame_indices[0]), int(tracks.frame_indices[-1]) + 1]
        if not np.isfinite(tracks.keypoints).any():  # no subject in the whole window: nothing to label
            self.events.write(frame.time, frame.index, window=span, labels=[], keypoints=keypoints)
            self._bouts(frame, self.bouts.finish(span[0]))
            return
        window = label_window(self.clf, tracks)
        self.latencies.append(time.monotonic() - frame.arrival)
        self.events.write(frame.time, frame.index, window=[window.start, window.end],
                          labels=[[name, round(p, 4)] for name, p in window.ranked], keypoints=keypoints)
        self._bouts(frame, self.bouts.update(window))
        with self.lock:
            self.done += 1

    def _bouts(self, frame: LiveFrame, events: list[BoutEvent]) -> None:
        for bout in events:
            self.events.write(frame.time, frame.index, bout={"state": bout.state, "label": bout.label,
                                                            "start": bout.start, "end": bout.end})

    def finish(self, last: LiveFrame | None) -> None:
        self.pool.shutdown(wait=True)
        for future in self.pending:
            if future.exception() is not None:
                log.warning("labelling a window failed: %s", future.exception())
        if last is not None:
            self._bouts(last, self.bouts.finish(last.index + 1))


class _Recorder:
    """Draws and encodes the recording on its own thread, so that a slow encoder holds up the next
    frame's keypoints only when ``pending`` frames wait for it."""

    def __init__(self, overlay: TrailOverlay, pending: int = 64) -> None:
        self.overlay = overlay
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="recording")
        self.slots = threading.Semaphore(pending)
        self.futures: deque[Future] = deque()

    def add(self, frame: np.ndarray, points: np.ndarray) -> None:
        self.slots.acquire()
        future = self.pool.submit(self.overlay.add, frame, points)
        future.add_done_callback(lambda _: self.slots.release())
        self.futures.append(future)
        while self.futures and self.futures[0].done():
            self.futures.popleft().result()  # raises the recording's error, if any

    def close(self, success: bool) -> None:
        self.pool.shutdown(wait=True)
        failed = next((f.exception() for f in self.futures if f.exception() is not None), None)
        self.overlay.close(success=success and failed is None)
        if failed is not None:
            raise failed


class _Run:
    """The state of one live run (what the loop has seen so far)."""

    def __init__(self, source: FrameSource, model: Detector, boxes: FrameBoxes, outputs: LiveOutputs,
                 options: LiveOptions, classifier: Classifier | None) -> None:
        self.source, self.model, self.boxes, self.outputs, self.options = source, model, boxes, outputs, options
        self.smoother = KeypointSmoother(options.smoothing) if options.smoothing < 1.0 else None
        self.recorder = None if outputs.recording is None else _Recorder(outputs.recording)
        self.latencies: deque = deque(maxlen=options.keep_latencies)
        self.label_latencies: deque = deque(maxlen=options.keep_latencies)
        self.labeller = None if classifier is None else _Labeller(
            classifier, RollingWindow(classifier, source.fps, model.num_keypoints, options.stride_seconds),
            outputs.events, BoutTracker(options.min_probability), options, self.label_latencies)
        self.frames = self.lost = 0
        self.last: LiveFrame | None = None
        self.started = time.monotonic()
        self.period_start, self.period_frames, self.period_latencies = self.started, 0, []

    def step(self, item: LiveFrame) -> None:
        events = self.outputs.events
        for gap in self.source.take_gaps():
            self.lost += gap.frames
            events.write(gap.after / self.source.fps, gap.after, gap={"frames": gap.frames, "seconds": round(gap.seconds, 3),
                                                                      "reason": gap.reason})
        box = self.boxes(item.index, item.frame)
        detections = detect_at_boxes(self.model, [item.frame], [box])
        if self.smoother is not None:
            detections = Detections(self.smoother(detections.keypoints[0])[None], detections.scores,
                                    detections.jacobians, detections.covariances)
        points = detections.keypoints[0]
        skipped = 0 if self.last is None else item.index - self.last.index - 1
        extra = {"skipped": skipped} if skipped > 0 else {}
        events.write(item.time, item.index, keypoints=points_as_lists(points),
                     scores=points_as_lists(detections.scores[0]), **extra)
        self.frames += 1
        self.period_frames += 1
        self.last = item
        latency = time.monotonic() - item.arrival
        self.latencies.append(latency)
        self.period_latencies.append(latency)
        if self.labeller is not None:
            self.labeller.add(item, detections)
        if self.recorder is not None:
            self.recorder.add(item.frame, points)
        if self.outputs.display is not None:
            self.outputs.display(item.frame, points)

    def status(self, now: float) -> Status:
        latencies = np.asarray(self.period_latencies) * 1e3
        elapsed = max(now - self.period_start, 1e-9)
        status = Status(self.frames, self.period_frames / elapsed,
                        float(np.median(latencies)) if latencies.size else float("nan"),
                        float(np.percentile(latencies, 95)) if latencies.size else float("nan"),
                        self.source.dropped, self.lost, self.source.reconnects,
                        0 if self.labeller is None else self.labeller.done)
        self.period_start, self.period_frames, self.period_latencies = now, 0, []
        return status

    def finish(self, reason: str) -> LiveSummary:
        """Labels in hand, open bouts closed, the closing line written, outputs closed."""
        try:
            if self.labeller is not None:
                self.labeller.finish(self.last)
            last = self.last
            self.outputs.events.write(0.0 if last is None else last.time, -1 if last is None else last.index, end=reason,
                                      frames=self.frames, dropped=self.source.dropped, lost=self.lost)
        finally:
            self.outputs.events.close()
            if self.recorder is not None:
                self.recorder.close(success=self.frames > 0)
        labeller = self.labeller
        return LiveSummary(reason, self.frames, self.source.dropped, self.lost, 0 if labeller is None else labeller.done,
                           0 if labeller is None else labeller.skipped, np.asarray(self.latencies),
                           np.asarray(self.label_latencies), time.monotonic() - self.started)


def run_live(source: FrameSource, model: Detector, boxes: FrameBoxes, outputs: LiveOutputs,
             options: LiveOptions = LiveOptions(), classifier: Classifier | None = None,
             status: Callable[[Status], None] | None = None) -> LiveSummary:
    """Run the live loop until the source ends (or ``options.max_frames``); returns a :class:`LiveSummary`.

    ``boxes`` gives each frame's box (:func:`fomm_kp.localize.crop_rule.online_boxes`); ``status``
    hears every ``options.status_seconds``. Ctrl-C closes everything, then raises
    :class:`~fomm_kp.errors.Interrupted`; any other error closes everything and propagates.
    """
    run = _Run(source, model, boxes, outputs, options, classifier)
    reason = "error"
    try:
        for item in source:
            run.step(item)
            now = time.monotonic()
            if status is not None and now - run.period_start >= options.status_seconds:
                status(run.status(now))
            if options.max_frames and run.frames >= options.max_frames:
                break
        reason = source.end_reason if not options.max_frames or run.frames < options.max_frames else "frame limit"
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        source.close()
        summary = run.finish(reason)
    if reason == "interrupted":
        where = outputs.events.path or "stdout"
        raise Interrupted(f"interrupted after {summary.frames} frames; events in {where}"
                          + (f", recording in {outputs.recording.writer.path}" if outputs.recording and summary.frames else ""))
    if summary.frames == 0:
        raise FommError(f"no frames came from {source.spec}")
    return summary
