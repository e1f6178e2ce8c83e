"""Live sources: files (as fast as taken, or paced), frame numbering, network streams that stall."""

from __future__ import annotations

import threading
import time

import av
import numpy as np
import pytest

from conftest import disc_frames, free_udp_port, send_udp, wait_udp_bound, write_video
from fomm_kp.errors import FommError
from fomm_kp.live.sources import (FrameSource, Gap, SourceOptions, _Numbering, _with_udp_defaults, open_source,
                                  source_kind)
from fomm_kp.video import iter_frames


def test_source_kind() -> None:
    assert source_kind("0") == source_kind("/dev/video2") == "camera"
    assert source_kind("udp://127.0.0.1:5000") == source_kind("rtsp://cam/stream") == "network"
    assert source_kind("http://host/live.ts") == "network"
    assert source_kind("clip.mp4") == "file"
    with pytest.raises(FommError, match="unsupported stream"):
        source_kind("gopher://old")


def test_a_file_gives_every_frame_with_its_number(disc_clip) -> None:
    with open_source(disc_clip.path) as source:
        assert (source.width, source.height, source.fps) == (64, 48, 10.0)
        assert not source.live
        frames = list(source)
    expected = list(iter_frames(disc_clip.path))
    assert [f.index for f in frames] == [i for i, _ in expected]
    for got, (_, frame) in zip(frames, expected):
        np.testing.assert_array_equal(got.frame, frame)
    assert frames[3].time == pytest.approx(0.3)
    assert source.dropped == 0 and source.take_gaps() == [] and source.end_reason == "end of stream"


def test_a_paced_file_arrives_at_its_rate_and_a_slow_reader_gets_the_newest(tmp_path) -> None:
    frames, _ = disc_frames(num_frames=30)
    clip = write_video(tmp_path / "fast.mp4", frames, fps=50.0)
    started = time.monotonic()
    with open_source(clip, SourceOptions(realtime=True)) as source:
        assert source.live
        paced = list(source)
    assert time.monotonic() - started >= 29 / 50 - 0.05
    assert [f.index for f in paced] == list(range(30))  # a reader that keeps up loses nothing
    with open_source(clip, SourceOptions(realtime=True, queue_size=1)) as source:
        slow = []
        for item in source:
            slow.append(item.index)
            time.sleep(0.1)
    assert slow[-1] == 29 and len(slow) < 15
    assert source.dropped == 30 - len(slow)


def test_numbering_by_timestamps_marks_lost_frames_and_restarts() -> None:
    numbering = _Numbering(10.0, timestamps=True)
    assert numbering.number(5.0) == (0, None)
    assert numbering.number(5.1) == (1, None)
    index, gap = numbering.number(5.4)  # frames 2 and 3 never came
    assert index == 4 and gap == Gap(1, 2, pytest.approx(0.2), "lost")
    assert numbering.number(1.0)[0] == 5  # timestamps went back: a new segment
    numbering.new_segment()
    index, gap = numbering.number(100.0)  # after a reopening: by the wall clock
    assert gap.reason == "reconnect" and index == 6 + gap.frames


def test_a_missing_file_and_a_silent_stream_fail_with_one_line(tmp_path) -> None:
    with pytest.raises(FommError, match="video not found"):
        open_source(tmp_path / "missing.mp4")
    started = time.monotonic()
    with pytest.raises(FommError, match="cannot open udp://"):
        open_source(f"udp://127.0.0.1:{free_udp_port()}", SourceOptions(open_timeout=0.5))
    assert time.monotonic() - started < 10


@pytest.mark.slow
def test_a_stalled_stream_is_reopened_and_the_gap_marked(tmp_path) -> None:
    """A sender streams, stops, and another starts a little later: the source stalls, reopens
    (waiting as it backs off) and goes on numbering; after the second sender, it gives up."""
    frames, _ = disc_frames(num_frames=40)
    clip = write_video(tmp_path / "clip.mp4", frames, fps=20.0)  # 2 s: opening a stream reads over a second of it
    port = free_udp_port()
    codec = ("-c:v", "libx264", "-g", "4", "-pix_fmt", "yuv420p")  # keyframes often: a reopened stream decodes at once
    # Three reopening attempts: on a busy machine the second ffmpeg may start sending only after the
    # first attempt has waited out its 0.8 s for data.
    options = SourceOptions(timeout=0.8, open_timeout=4.0, retries=3, backoff=0.1)
    senders: list = []

    def send_twice() -> None:
        assert wait_udp_bound(port)
        senders.append(send_udp(clip, port, *codec))
        senders[0].wait(60)
        time.sleep(1.0)  # the stream stalls: the source gives up on the connection and reopens it
        senders.append(send_udp(clip, port, *codec))

    sending = threading.Thread(target=send_twice)
    sending.start()
    try:
        with FrameSource(f"udp://127.0.0.1:{port}", options) as source:
            got = [item.index for item in source]
            gaps = source.take_gaps()
    finally:
        sending.join(60)
        for sender in senders:
            if sender.poll() is None:
                sender.kill()
    assert source.reconnects >= 1
    reconnects = [g for g in gaps if g.reason == "reconnect"]
    assert len(reconnects) == 1 and reconnects[0].seconds > 0.5
    assert got == sorted(got) and len(set(got)) == len(got)
    # frames of both senders (how many of each depends on how soon each opening reads: not counted)
    gap = reconnects[0]
    assert sum(i <= gap.after for i in got) >= 10 and sum(i > gap.after for i in got) >= 10
    assert got[-1] > 40 + reconnects[0].frames - 1  # numbering went on past the gap
    assert "source lost" in source.end_reason



def test_a_stream_is_probed_as_long_as_it_may_take_to_open(monkeypatch) -> None:
    """A receiver that joins a stream already under way learns the frame size only from a key
    frame: ffmpeg's probe (5 s by default) is told to wait as long as ``open_timeout`` allows.
    (By hand: MPEG-TS over UDP with key frames 10 s apart, joined between them, opened with a frame
    size only with these options.)"""
    seen: dict = {}

    def fake_open(spec, format=None, options=None, timeout=None):
        seen.update(spec=spec, options=dict(options or {}), timeout=timeout)
        raise av.error.ExitError(1414092869, "stop here", spec)

    monkeypatch.setattr(av, "open", fake_open)
    with pytest.raises(FommError, match="cannot open udp://"):
        open_source("udp://127.0.0.1:5000", SourceOptions(open_timeout=40.0, timeout=2.0))
    # ... but reads no more than ffmpeg's 5 MB: MPEG-TS keeps the probe's size of stream in memory
    assert seen["options"]["analyzeduration"] == str(40_000_000) and int(seen["options"]["probesize"]) == 5_000_000
    assert seen["timeout"] == (40.0, 2.0) and f"fifo_size={(2 << 20) // 188}" in seen["spec"]  # a bounded ring
    with pytest.raises(FommError, match="cannot open rtsp://"):
        open_source("rtsp://cam.local/stream", SourceOptions(open_timeout=1.0))
    assert seen["options"] == {"rtsp_transport": "tcp", "analyzeduration": str(5_000_000),
                               "probesize": "5000000"}  # ffmpeg's own default


def test_the_udp_ring_buffer_is_bounded_and_a_url_may_set_its_own() -> None:
    """ffmpeg's UDP ring buffer is taken on as it first fills: a million packets (188 MB) made memory
    grow with the stream's bit rate for hours, so the default is 2 MiB; a URL's own settings win."""
    url = _with_udp_defaults("udp://127.0.0.1:5000")
    fifo = int(url.split("fifo_size=")[1].split("&")[0])
    assert fifo * 188 <= 2 << 20 and "overrun_nonfatal=1" in url
    assert _with_udp_defaults("udp://127.0.0.1:5000?fifo_size=77").count("fifo_size=") == 1
    assert "fifo_size=77&" in _with_udp_defaults("udp://127.0.0.1:5000?fifo_size=77")
    assert _with_udp_defaults("rtsp://cam/stream") == "rtsp://cam/stream"
