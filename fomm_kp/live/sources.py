"""Where live frames come from: a camera, a file (optionally paced at its own rate) or a network stream.

:func:`open_source` reads any of them with PyAV on a background thread
(:class:`fomm_kp.decoding.Prefetch`). Live sources (cameras, network streams, files paced with
``realtime``) hand frames over through a small queue where the newest frame wins: when the caller is
slower than the source, the oldest waiting frames are dropped (counted), so latency stays bounded.
An unpaced file is read as fast as the caller takes its frames, none dropped.

Frame numbers: a file counts decoded frames (the numbers offline tracking uses); a camera or network
stream numbers frames by their timestamps (``round(seconds since its first frame × fps)``), so
frames lost on the way show up as gaps. A network stream that stalls (no frame for ``timeout``
seconds) or fails is reopened after a growing wait (``backoff``, doubling up to ``max_backoff``) at
most ``retries`` times; each reopening is logged as a :class:`Gap`, and numbering continues after the
wall-clock time that passed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple
from urllib.parse import urlsplit

import av
import numpy as np

from fomm_kp.decoding import Prefetch, rgb_pixels
from fomm_kp.errors import FommError
from fomm_kp.settings import check, integer, number

__all__ = ["SourceOptions", "LiveFrame", "Gap", "FrameSource", "open_source", "source_kind", "NETWORK_SCHEMES"]

log = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "udp", "rtp", "tcp", "srt", "http", "https")


@dataclass(frozen=True)
class SourceOptions:
    """How a source is read.

    Attributes:
        realtime: pace a file at its own frame rate (as a camera would deliver it); newest frame wins.
        queue_size: frames waiting between the reader thread and the caller (live sources).
        timeout: seconds without data before a network stream or camera counts as stalled.
        open_timeout: the longest wait for a stream or camera to open, or to reopen (a UDP
            listener waits this long for the sender's first packets).
        retries: reopenings of a stalled or failed network stream before it counts as ended.
        backoff: seconds before the first reopening; doubles each time up to ``max_backoff``.
        max_backoff: the longest wait between reopenings.
        fps: frame rate to assume (cameras: to request) when the source states none; 0 = as stated.
    """

    realtime: bool = False
    queue_size: int = 2
    timeout: float = 10.0
    open_timeout: float = 30.0
    retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 8.0
    fps: float = 0.0

    def __post_init__(self) -> None:
        check(self, queue_size=integer(1, 100_000), timeout=number(above=0.0), open_timeout=number(above=0.0),
              retries=integer(0),
              backoff=number(0.0), max_backoff=number(0.0), fps=number(0.0))


class LiveFrame(NamedTuple):
    """One decoded frame: its number, uint8 RGB pixels ``(H, W, 3)``, its time on the source's clock
    (seconds since the first frame) and when it was decoded (``time.monotonic()``)."""

    index: int
    frame: np.ndarray
    time: float
    arrival: float


class Gap(NamedTuple):
    """Frames that never arrived: ``frames`` missing after frame ``after`` (estimated from
    timestamps or the wall clock), ``seconds`` long; ``reason`` is ``lost`` (the stream skipped
    them) or ``reconnect`` (the stream stalled or failed and was reopened)."""

    after: int
    frames: int
    seconds: float
    reason: str


def source_kind(spec: str) -> str:
    """``camera`` (a number or ``/dev/videoN``), ``network`` (a URL) or ``file``."""
    if spec.isdigit() or spec.startswith("/dev/video"):
        return "camera"
    scheme = urlsplit(spec).scheme.lower()
    if scheme in NETWORK_SCHEMES:
        return "network"
    if "://" in spec:
        raise FommError(f"unsupported stream '{spec}': use one of {', '.join(s + '://' for s in NETWORK_SCHEMES)}")
    return "file"


# ffmpeg's UDP reader copies packets into a ring buffer of ``fifo_size`` packets of 188 bytes, which
# the process's resident memory takes on page by page as the ring first fills: at a million packets
# (188 MB) memory rose with the stream until the ring was full (docs/live.md). 2 MiB holds 2 s of
# an 8 Mbit/s stream (more of smaller ones) while the reader thread, which drains it, is held up.
UDP_FIFO_PACKETS = (2 << 20) // 188

# Bytes a stream's probe may read: ffmpeg's default (a key frame at most this far into the stream).
PROBE_BYTES = 5_000_000


def _with_udp_defaults(url: str) -> str:
    """A UDP URL with a large receive buffer and a bounded FIFO that survives bursts (unless the URL
    sets them)."""
    if urlsplit(url).scheme.lower() != "udp":
        return url
    extra = [f"{key}={value}" for key, value in (("fifo_size", str(UDP_FIFO_PACKETS)), ("overrun_nonfatal", "1"),
                                                 ("buffer_size", "8388608")) if f"{key}=" not in url]
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)


class FrameSource:
    """Frames of one source, read on a background thread; iterate it for :class:`LiveFrame` s.

    ``width``, ``height`` and ``fps`` are known once the source is open (the constructor opens it,
    so a bad source fails here). :meth:`take_gaps` hands over the gaps seen so far; ``dropped``
    counts frames the newest-wins queue dropped; ``reconnects`` counts reopenings.
    """

    def __init__(self, spec: str, options: SourceOptions = SourceOptions()) -> None:
        self.spec = str(spec)
        self.kind = source_kind(self.spec)
        self.options = options
        self.live = self.kind != "file" or options.realtime
        self.reconnects = 0
        self.end_reason = "end of stream"
        self._gaps: list[Gap] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._container = self._open(first=True)
        stream = self._container.streams.video[0]
        self.width, self.height = int(stream.codec_context.width), int(stream.codec_context.height)
        if self.width < 1 or self.height < 1:
            self._container.close()
            raise FommError(f"{self.spec} states no frame size after opening (no key frame yet?): "
                            "raise --open-timeout, or send key frames more often")
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        stated = float(rate) if rate else 0.0
        self.fps = options.fps if options.fps > 0 and (self.kind == "camera" or stated <= 0) else (stated or 30.0)
        self._prefetch = Prefetch(self._frames(), size=options.queue_size if self.live else 16,
                                  drop_oldest=self.live, name=f"source {self.kind}")

    @property
    def dropped(self) -> int:
        return self._prefetch.dropped

    def take_gaps(self) -> list[Gap]:
        with self._lock:
            gaps, self._gaps = self._gaps, []
        return gaps

    def __iter__(self) -> Iterator[LiveFrame]:
        return iter(self._prefetch)

    def close(self) -> None:
        self._stopping.set()
        self._prefetch.close()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the reader thread ------------------------------------------------------------------

    def _open(self, first: bool = False) -> av.container.InputContainer:
        spec, kind, options = self.spec, self.kind, self.options
        fmt, av_options = None, {}
        if kind == "file":
            if not Path(spec).is_file():
                raise FommError(f"video not found: {spec}")
        elif kind == "camera":
            fmt = "v4l2"
            spec = f"/dev/video{spec}" if spec.isdigit() else spec
            if options.fps > 0:
                av_options["framerate"] = f"{options.fps:g}"
        else:
            spec = _with_udp_defaults(spec)
            if urlsplit(spec).scheme.lower() in ("rtsp", "rtsps"):
                av_options["rtsp_transport"] = "tcp"
            # A receiver that joins a running stream needs a key frame before it knows the frame
            # size: let the probe wait for one as long as the opening may take (ffmpeg's 5 s
            # default gives up on streams with key frames further apart). Its size in bytes stays
            # ffmpeg's: MPEG-TS keeps that much of the stream for seeking back, taken on as the
            # stream flows (at 64 MiB it kept rising through the 5 minutes of scripts/udp_memory.py).
            av_options["analyzeduration"] = str(int(max(options.open_timeout, 5.0) * 1e6))
            av_options["probesize"] = str(PROBE_BYTES)
        timeout = None if kind == "file" else (options.open_timeout, options.timeout)
        try:
            container = av.open(spec, format=fmt, options=av_options, timeout=timeout)
        except (av.error.FFmpegError, OSError) as exc:
            raise FommError(f"cannot open {self.spec}: {exc.__class__.__name__}: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise FommError(f"{self.spec} has no video stream")
        container.streams.video[0].thread_type = "AUTO" if not self.live else "SLICE"
        if first:
            log.info("opened %s (%s)", self.spec, kind)
        return container

    def _frames(self) -> Iterator[LiveFrame]:
        """Frames of every connection in turn, reopening a live stream that stalls or fails."""
        state = _Numbering(self.fps, timestamps=self.kind != "file")
        container: av.container.InputContainer | None = self._container
        failures = 0
        while not self._stopping.is_set():
            if container is None:
                container = self._reopen(failures, state)
                if container is None:
                    self.end_reason = f"source lost ({self.options.retries} reopening(s) failed)"
                    return
            started = time.monotonic()
            try:
                for item in self._decode(container, state):
                    failures = 0
                    yield item
                reason = "ended"
            except (av.error.FFmpegError, OSError) as exc:
                if self.kind == "file":
                    raise FommError(f"cannot read video {self.spec}: {exc.__class__.__name__}: {exc}") from exc
                reason = (f"no data for {self.options.timeout:g} s" if isinstance(exc, av.error.ExitError)
                          else f"{exc.__class__.__name__}: {exc}")
            finally:
                container.close()
                container = None
            if self.kind == "file" or self._stopping.is_set():
                return
            failures += 1
            log.warning("%s stopped after %.1f s (%s)", self.spec, time.monotonic() - started, reason)
            if failures > self.options.retries:
                self.end_reason = f"source lost ({reason}; {self.options.retries} reopening(s) tried)"
                log.warning("%s: %s", self.spec, self.end_reason)
                return

    def _reopen(self, failures: int, state: "_Numbering") -> av.container.InputContainer | None:
        """Wait (growing backoff), reopen; None when the retries are spent or the source is closed."""
        while not self._stopping.is_set():
            wait = min(self.options.max_backoff, self.options.backoff * 2 ** max(failures - 1, 0))
            if self._stopping.wait(wait):
                return None
            self.reconnects += 1
            try:
                container = self._open()
            except FommError as exc:
                failures += 1
                log.warning("reopening %s failed (%s)", self.spec, exc)
                if failures > self.options.retries:
                    return None
                continue
            state.new_segment()
            return container
        return None

    def _decode(self, container: av.container.InputContainer, state: "_Numbering") -> Iterator[LiveFrame]:
        """Frames of one connection; a stall or failure is raised after the decoder's last frames."""
        stream = container.streams.video[0]
        start = time.monotonic()
        failure: BaseException | None = None
        try:
            for packet in container.demux(stream):
                if self._stopping.is_set():
                    return
                try:
                    decoded = stream.decode(packet)
                except av.error.InvalidDataError as exc:  # a damaged packet: skip it, keep the stream
                    log.warning("%s: skipped a damaged packet (%s)", self.spec, exc)
                    continue
                yield from self._emit(decoded, state, start)
        except (av.error.FFmpegError, OSError) as exc:
            failure = exc
        try:  # frames the decoder still holds (reordering, frame threads) after a stall
            tail = stream.codec_context.decode(None)
        except av.error.FFmpegError:
            tail = []
        yield from self._emit(tail, state, start)
        if failure is not None:
            raise failure

    def _emit(self, decoded: list, state: "_Numbering", start: float) -> Iterator[LiveFrame]:
        for frame in decoded:
            seconds = None if frame.time is None or not np.isfinite(frame.time) else float(frame.time)
            index, gap = state.number(seconds)
            if gap is not None:
                with self._lock:
                    self._gaps.append(gap)
            pixels = rgb_pixels(frame)
            if self.kind == "file" and self.options.realtime:
                delay = start + index / self.fps - time.monotonic()
                if delay > 0 and self._stopping.wait(delay):
                    return
            yield LiveFrame(index, pixels, state.elapsed(index), time.monotonic())


class _Numbering:
    """Frame numbers of a stream: decode order for files, timestamps for live streams, continued
    across reopenings by the wall-clock time between them."""

    def __init__(self, fps: float, timestamps: bool) -> None:
        self.fps = fps
        self.timestamps = timestamps
        self.last = -1
        self.origin: float | None = None  # stream seconds of the segment's first frame
        self.base = 0  # number of the segment's first frame
        self.segment_wall: float | None = None  # wall clock when a reopening started a segment
        self.last_wall = time.monotonic()

    def new_segment(self) -> None:
        self.origin = None
        self.segment_wall = time.monotonic()

    def elapsed(self, index: int) -> float:
        return index / self.fps

    def number(self, seconds: float | None) -> tuple[int, Gap | None]:
        gap = None
        now = time.monotonic()
        if not self.timestamps or seconds is None:
            index = self.last + 1
        elif self.origin is None:
            if self.segment_wall is not None:  # after a reopening: continue by the wall clock
                missing = max(0, int(round((now - self.last_wall) * self.fps)) - 1)
                gap = Gap(self.last, missing, now - self.last_wall, "reconnect")
                self.segment_wall = None
            else:
                missing = 0
            self.origin, self.base = seconds, self.last + 1 + missing
            index = self.base
        else:
            index = self.base + int(round((seconds - self.origin) * self.fps))
            if index <= self.last:  # timestamps went back (a restarted sender): a new segment
                self.origin, self.base, index = seconds, self.last + 1, self.last + 1
            elif index > self.last + 1:
                gap = Gap(self.last, index - self.last - 1, (index - self.last - 1) / self.fps, "lost")
        self.last, self.last_wall = index, now
        return index, gap


def open_source(spec: str | os.PathLike, options: SourceOptions = SourceOptions()) -> FrameSource:
    """Open a camera (``0`` or ``/dev/video0``), a video file or a stream URL (``rtsp://``,
    ``udp://``, ``http://``, ...): a :class:`FrameSource` reading on a background thread."""
    return FrameSource(str(spec), options)
