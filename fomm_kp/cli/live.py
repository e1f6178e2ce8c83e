"""``fomm-kp live``: keypoints and behaviour labels from a camera, a file or a network stream."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from fomm_kp.cli.app import app, begin_work, console
from fomm_kp.cli.options import check_device
from fomm_kp.live import LiveOptions, SourceOptions, Status, live as run
from fomm_kp.live.session import check_outputs
from fomm_kp.runtime.loading import load_model


def _status_line(status: Status) -> None:
    begin_work()  # frames are flowing: the log lines held back while the inputs were checked go out
    latency = "-" if math.isnan(status.latency_ms) else f"{status.latency_ms:.1f} ms (p95 {status.latency_p95_ms:.1f})"
    text = (f"live: frame {status.frames} · {status.fps:.1f} fps · latency {latency} · dropped {status.dropped} · "
            f"lost {status.lost} · reconnects {status.reconnects} · labels {status.labels}")
    console.print(text, end="\r" if console.is_terminal else "\n", highlight=False, soft_wrap=True)


@app.command("live")
def live_command(
    source: str = typer.Argument(..., help="Camera (0 or /dev/video0), video file, or stream URL (rtsp://, udp://, http://, ...)."),
    model: Path = typer.Option(..., "--model", "-m", help="Detector: a student .onnx (fomm-kp export) or a checkpoint."),
    classifier: Optional[Path] = typer.Option(None, help="Behaviour classifier .npz (fomm-kp fit): ranked labels every stride."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Events as JSON lines (default: stdout)."),
    record: Optional[Path] = typer.Option(None, help="Also record the frames with keypoints drawn (.mp4)."),
    show: bool = typer.Option(False, help="Show the frames with keypoints in a window (needs OpenCV with a GUI)."),
    realtime: bool = typer.Option(False, help="Pace a video file at its own frame rate, as a camera would deliver it."),
    backend: str = typer.Option("auto", help="torch, onnx, tensorrt, or auto (onnx for students on the CPU)."),
    engine: Optional[Path] = typer.Option(None, help="TensorRT .engine (tensorrt backend) or .onnx (onnx backend) to run."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(None, min=1, help="ONNX Runtime threads (default: its own choice)."),
    background: Optional[Path] = typer.Option(None, help="Image or video of the empty scene (default: a running background)."),
    smooth_weight: float = typer.Option(1.0, min=0.01, max=1.0, help="Causal smoothing: the weight of each frame's keypoints in their running mean (1: none)."),
    stride: Optional[float] = typer.Option(None, min=0.01, help="Seconds between labels (default: the classifier's stride)."),
    min_probability: float = typer.Option(0.0, min=0.0, max=1.0, help="Bouts need a top label at least this probable."),
    timeout: float = typer.Option(10.0, min=0.1, help="Seconds without frames before a stream counts as stalled."),
    open_timeout: float = typer.Option(30.0, min=0.1, help="Seconds to wait for a stream or camera to open."),
    retries: int = typer.Option(5, min=0, help="Reopenings of a stalled or failed stream before it counts as ended."),
    fps: float = typer.Option(0.0, min=0.0, help="Frame rate to assume (cameras: to request) when the source states none."),
    queue: int = typer.Option(2, min=1, max=100_000, help="Frames that may wait (live sources; the newest wins when full)."),
    max_frames: int = typer.Option(0, min=0, help="Stop after this many frames (0: at the end of the stream)."),
) -> None:
    """Keypoints and behaviour labels from a camera, a file or a network stream, as they happen."""
    check_device(device)
    check_outputs(source, model, classifier, out, record, show)
    detector = load_model(model, device=device, backend=backend, engine=engine, threads=threads)
    options = LiveOptions(smoothing=smooth_weight, stride_seconds=stride, min_probability=min_probability, max_frames=max_frames)
    source_options = SourceOptions(realtime=realtime, queue_size=queue, timeout=timeout, open_timeout=open_timeout,
                                   retries=retries, fps=fps)
    summary = run(source, detector, classifier, out, record, show, options, source_options, background, _status_line)
    begin_work()
    keypoints = summary.keypoint_latencies * 1e3
    console.print(f"{summary.reason}: {summary.frames} frames in {summary.seconds:.1f} s, {summary.dropped} dropped, "
                  f"{summary.lost} lost, {summary.labels} labelled windows; latency to keypoints median "
                  f"{_median(keypoints)} ms" + (f"; events in {out}" if out else "") + (f", recording {record}" if record else ""),
                  highlight=False, soft_wrap=True)


def _median(values: np.ndarray) -> str:
    return "-" if len(values) == 0 else f"{float(np.median(values)):.1f}"
