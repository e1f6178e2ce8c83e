"""End-to-end speed of offline ``fomm-kp track`` with a student: decode, localise, crop, detect, write.

    python scripts/benchmark_track.py --model student.onnx --video m3v1mp4.mp4 --threads 2 --out track_bench.json

What is timed, on the whole video, ``--repeats`` times (the median and the best are reported):

- ``track``: :func:`fomm_kp.track` with the model, writing the tracks to a ``.npz`` (everything a
  user waits for: the background pass, localisation, crops, the detector, mapping back, writing);
- ``decode``: PyAV decoding with conversion to RGB and nothing else (the floor set by the codec);
- ``decode_scale128``: PyAV decoding with ffmpeg scaling each frame to 128 x 128 RGB (the figure
  the issue quotes as a reference).

The machine's load average is recorded before and after: on a shared machine other processes slow
every figure. Run it through the shared lock that keeps heavy runs apart.

``--reference TRACKS``: tracks of the same video made another way (``fomm-kp track`` of another
version of the package, with the same model); the keypoints of the timed runs are compared with
them (the largest difference in pixels, and the frames where one found the subject and the other
not) and ``--tolerance`` pixels (default 0.5) is checked: a faster pipeline must not move them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from fomm_kp.runtime import load_model, track
from fomm_kp.tracks import load_tracks
from fomm_kp.video import probe


def decode_rate(video: Path, size: int | None) -> float:
    """Frames/s of PyAV decoding (frame threads) with conversion to RGB, optionally scaled to ``size``."""
    started = time.perf_counter()
    count = 0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if size is None:
                frame.to_ndarray(format="rgb24")
            else:
                frame.to_ndarray(format="rgb24", width=size, height=size)
            count += 1
    return count / (time.perf_counter() - started)


def compare(tracks, reference_path: Path, tolerance: float) -> dict:
    """The largest keypoint difference (pixels) to the reference tracks, frame by frame, and the
    frames found by one of them only; ``within`` says whether every difference is at most ``tolerance``."""
    reference = load_tracks(reference_path)
    if reference.keypoints.shape != tracks.keypoints.shape:
        raise SystemExit(f"error: reference tracks {reference.keypoints.shape} differ in shape from {tracks.keypoints.shape}")
    mine, theirs = tracks.keypoints, reference.keypoints
    found_mine, found_theirs = np.isfinite(mine).all(axis=(1, 2, 3)), np.isfinite(theirs).all(axis=(1, 2, 3))
    both = found_mine & found_theirs
    largest = float(np.abs(mine[both] - theirs[both]).max()) if both.any() else 0.0
    differ = int((found_mine != found_theirs).sum())
    return {"reference": str(reference_path), "frames_compared": int(both.sum()), "largest_px": largest,
            "found_differently": differ, "tolerance_px": tolerance, "within": bool(largest <= tolerance and differ == 0)}


def timed(run, repeats: int) -> dict:
    rates = [run() for _ in range(repeats)]
    return {"fps_median": statistics.median(rates), "fps_best": max(rates), "runs": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="student .onnx or checkpoint")
    parser.add_argument("--video", default="../shared/data/dlc-openfield/videos/m3v1mp4.mp4")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--localize", default=None, help="as track's localize (default: as trained)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--reference", type=Path, default=None, help="tracks to compare the keypoints with")
    parser.add_argument("--tolerance", type=float, default=0.5, help="pixels the keypoints may differ from --reference")
    args = parser.parse_args()
    video = Path(args.video)
    info = probe(video)
    model = load_model(args.model, threads=args.threads)
    result = {"video": str(video), "frames": info.num_frames, "size": [info.width, info.height],
              "model": str(args.model), "threads": args.threads, "batch": args.batch, "localize": args.localize,
              "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                          "load_average_start": os.getloadavg()},
              "date": time.strftime("%Y-%m-%d %H:%M")}
    with tempfile.TemporaryDirectory() as folder:
        def run_track() -> float:
            started = time.perf_counter()
            tracks = track(video, model, out=Path(folder) / "tracks.npz", localize=args.localize, batch_size=args.batch)
            return tracks.num_frames / (time.perf_counter() - started)

        result["track"] = timed(run_track, args.repeats)
        if args.reference is not None:
            result["reference"] = compare(load_tracks(Path(folder) / "tracks.npz"), args.reference, args.tolerance)
    result["decode"] = timed(lambda: decode_rate(video, None), args.repeats)
    result["decode_scale128"] = timed(lambda: decode_rate(video, 128), args.repeats)
    result["machine"]["load_average_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
