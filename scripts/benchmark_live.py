"""Live speed: sustained frames/s, latency to keypoints and to labels, and memory over a long stream.

    python scripts/benchmark_live.py --model student.onnx --minutes 10 --out live_bench.json

A 640x480 clip (default: the open-field mouse, 30 fps) is streamed in a loop at its own rate by the
ffmpeg that imageio-ffmpeg ships (``-re -stream_loop -1 -c copy``, MPEG-TS over loopback UDP) into
:func:`fomm_kp.live.live` running in this process, for ``--minutes``. With ``--classifier`` (or one
fitted here on the clip's first 600 frames, two arbitrary halves: its accuracy is not the point,
its cost is) every stride's window is labelled too.

Reported:

- ``stream``: frames processed, dropped (the newest-wins queue skipped them to keep up) and lost
  (never arrived), sustained frames/s (the median of the per-second rates after the first minute);
- ``latency_ms``: from a frame's arrival (decoded by the reader thread) to its keypoints being
  written, and from the arrival of a window's last frame to its labels being written: median, p95,
  p99, max (the time a camera or the network takes before arrival is not in it);
- ``memory``: resident set size sampled every second: after the first minute, at the end, the
  largest, and the slope of a straight line through the samples after the first minute and through
  those of the second half of the stream (MB/min; the UDP reader's ring buffer, 2 MiB, is taken on
  as it first fills, at the stream's bit rate, so the second half is where memory must be flat);
- ``capacity``: the same pipeline on the clip read as fast as it can be (no pacing), frames/s.

Load averages are recorded at the start and the end. Run it through the shared lock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import threading
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from fomm_kp.behaviour.classifiers import Classifier, load_classifier
from fomm_kp.behaviour.fitting import fit_classifier
from fomm_kp.behaviour.segments import Segment
from fomm_kp.live import LiveOptions, SourceOptions, Status, live
from fomm_kp.runtime import load_model, track
from fomm_kp.video import FrameRange


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bound(port: int) -> bool:
    key = f":{port:04X} "
    return any(key in Path(t).read_text().upper() for t in ("/proc/net/udp", "/proc/net/udp6") if Path(t).exists())


def percentiles(values_s: np.ndarray) -> dict:
    ms = np.asarray(values_s) * 1e3
    if ms.size == 0:
        return {}
    return {"median": float(np.median(ms)), "p95": float(np.percentile(ms, 95)), "p99": float(np.percentile(ms, 99)),
            "max": float(ms.max()), "count": int(ms.size)}


def demo_classifier(video: Path, model) -> Classifier:
    tracks = track(video, model, frames=FrameRange(stop=600))
    half = tracks.num_frames // 2
    name = video.name
    return fit_classifier(tracks, [Segment(name, 0, half - 1, "first"), Segment(name, half, tracks.num_frames - 1, "second")])


def stream(video: Path, model, clf: Classifier, minutes: float) -> dict:
    port = free_udp_port()
    seconds = minutes * 60.0
    samples: list[tuple[float, float, float]] = []
    started = time.monotonic()
    sender: dict = {}

    def send() -> None:
        while not bound(port):
            time.sleep(0.05)
        sender["process"] = subprocess.Popen(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
             "-i", str(video), "-t", f"{seconds:.1f}", "-c", "copy", "-an", "-f", "mpegts",
             f"udp://127.0.0.1:{port}?pkt_size=1316"])

    def status(state: Status) -> None:
        samples.append((time.monotonic() - started, rss_mb(), state.fps))

    threading.Thread(target=send, daemon=True).start()
    summary = live(f"udp://127.0.0.1:{port}", model, clf, out=os.devnull, options=LiveOptions(),
                   source_options=SourceOptions(retries=0, timeout=3.0, open_timeout=60.0), status=status)
    sender["process"].wait(30)
    times, rss, fps = (np.array(c) for c in zip(*samples)) if samples else (np.zeros(0),) * 3
    late = times >= min(60.0, seconds / 2)
    half = times >= seconds / 2

    def slope(chosen: np.ndarray) -> float:
        return float(np.polyfit(times[chosen] / 60.0, rss[chosen], 1)[0]) if chosen.sum() >= 10 else float("nan")

    return {
        "stream": {"frames": summary.frames, "dropped": summary.dropped, "lost": summary.lost,
                   "seconds": summary.seconds, "fps_sustained": float(np.median(fps[late])) if late.any() else float("nan"),
                   "labels": summary.labels, "skipped_windows": summary.skipped_windows, "reason": summary.reason},
        "latency_ms": {"keypoints": percentiles(summary.keypoint_latencies), "labels": percentiles(summary.label_latencies)},
        "memory_mb": {"after_first_minute": float(rss[late][0]) if late.any() else float("nan"),
                      "end": float(rss[-1]) if rss.size else float("nan"), "max": float(rss.max()) if rss.size else float("nan"),
                      "slope_mb_per_minute": slope(late), "slope_second_half_mb_per_minute": slope(half),
                      "samples": [[round(t, 1), round(m, 1)] for t, m in zip(times, rss)][::10]},
    }


def capacity(video: Path, model, clf: Classifier, frames: int) -> dict:
    summary = live(video, model, clf, out=os.devnull, options=LiveOptions(max_frames=frames))
    return {"frames": summary.frames, "fps": summary.frames / summary.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="student .onnx or checkpoint")
    parser.add_argument("--classifier", default=None, help="classifier .npz (default: one fitted on the clip)")
    parser.add_argument("--video", default="../shared/data/dlc-openfield/videos/m3v1mp4.mp4")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    video = Path(args.video)
    model = load_model(args.model, threads=args.threads)
    clf = load_classifier(args.classifier) if args.classifier else demo_classifier(video, model)
    result = {"video": str(video), "model": str(args.model), "threads": args.threads, "minutes": args.minutes,
              "classifier": args.classifier or "fitted on the clip's first 600 frames (two halves)",
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average_start": os.getloadavg()},
              "date": time.strftime("%Y-%m-%d %H:%M")}
    result.update(stream(video, model, clf, args.minutes))
    result["capacity"] = capacity(video, model, clf, 1500)
    result["machine"]["load_average_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
