"""Many videos on Ray against one after another: wall time of ``fomm_kp.distributed.run_many``.

Tracks the same N videos (default: 8 copies of the worm clip, by symbolic link, each its own
video to the job) with a teacher (``--config``, default ``cpu``), once in this process (``workers=1``) and once as
Ray tasks on a local instance (``--workers``, one torch thread each), and checks that both wrote
the same bytes. The Ray figure includes starting Ray and its workers. The teacher has random
weights unless ``--checkpoint`` is given: tracking costs the same whatever the weights.

    python scripts/benchmark_ray.py                      # 8 videos, 2 workers
    python scripts/benchmark_ray.py --videos a.mp4 b.mp4 --workers 4 --checkpoint runs/x/checkpoint.pt

Prints one JSON object: both wall times, their ratio, frames/s and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORM = REPO.parent / "shared" / "data" / "worm-celegans" / "test.avi"


def random_teacher(path: Path, name: str) -> Path:
    """A teacher of the built-in config ``name`` with random weights, whole frames (no localisation)."""
    import torch

    from fomm_kp.checkpoint import save_checkpoint
    from fomm_kp.config import builtin_config
    from fomm_kp.models import FOMM

    torch.manual_seed(0)
    config = builtin_config(name)
    network = FOMM(config.model)
    state = {name: part.state_dict() for name, part in network.parts().items() if part is not None}
    return Path(save_checkpoint(path, config, state, 0, {"localized": False}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, nargs="*", help="videos to track (default: 8 links to the worm clip)")
    parser.add_argument("--copies", type=int, default=8, help="links to the worm clip when --videos is not given")
    parser.add_argument("--checkpoint", type=Path, help="teacher checkpoint (default: random cpu-config teacher)")
    parser.add_argument("--config", default="cpu", help="built-in config of the random teacher")
    parser.add_argument("--frames", type=int, help="track only the first N frames of each video")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    from fomm_kp.distributed import RunOptions, TrackJob, run_many
    from fomm_kp.video import FrameRange

    with tempfile.TemporaryDirectory(prefix="benchmark_ray_") as tmp:
        folder = Path(tmp)
        videos = args.videos
        if not videos:
            if not WORM.is_file():
                print(f"error: {WORM} not found: pass --videos", file=sys.stderr)
                return 2
            videos = []
            for i in range(args.copies):
                (folder / f"worm{i}.avi").symlink_to(WORM)
                videos.append(folder / f"worm{i}.avi")
        checkpoint = args.checkpoint or random_teacher(folder / "teacher.pt", args.config)
        frames = FrameRange(0, args.frames)
        load_before = os.getloadavg()
        runs = {}
        for name, options in (("serial", RunOptions(workers=1)), ("ray", RunOptions(workers=args.workers))):
            started = time.monotonic()
            summary = run_many(videos, TrackJob(checkpoint, folder / name, frames=frames), options)
            runs[name] = {"seconds": round(time.monotonic() - started, 2), "engine": summary.engine,
                          "counts": summary.counts, "frames": summary.frames,
                          "frames_per_second": round(summary.frames_per_second, 1)}
            if summary.failed:
                print(f"error: {summary.failed[0].source}: {summary.failed[0].error}", file=sys.stderr)
                return 1
        identical = all((folder / "serial" / f"{v.stem}.npz").read_bytes() == (folder / "ray" / f"{v.stem}.npz").read_bytes()
                        for v in videos)
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "videos": len(videos), "workers": args.workers, "runs": runs,
        "ray_over_serial": round(runs["ray"]["seconds"] / runs["serial"]["seconds"], 3),
        "identical_tracks": identical,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "checkpoint": str(args.checkpoint) if args.checkpoint else f"random {args.config}-config teacher",
        "frames_per_video": args.frames or "all",
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
