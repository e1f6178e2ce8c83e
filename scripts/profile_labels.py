"""Where a live label's time goes: cProfile of ``fomm_kp.live.rolling.label_window`` on one window.

    python scripts/profile_labels.py --model student.onnx [--video clip.mp4] [--frames 200] [--calls 5]

Tracks the first ``--frames`` frames of the clip (default: the open-field mouse) with the model,
fits the same throw-away classifier as ``scripts/benchmark_live.py`` (two halves of the first 600
frames: its cost is the point, not its accuracy), then labels that window ``--calls`` times under
cProfile and prints the mean time per call and the functions that took longest (cumulative).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_live import demo_classifier  # noqa: E402

from fomm_kp import api  # noqa: E402
from fomm_kp.live.rolling import label_window  # noqa: E402
from fomm_kp.runtime import load_model  # noqa: E402
from fomm_kp.video import FrameRange  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="student .onnx or checkpoint")
    parser.add_argument("--video", type=Path, default=Path("../shared/data/dlc-openfield/videos/m3v1mp4.mp4"))
    parser.add_argument("--frames", type=int, default=200, help="frames in the window")
    parser.add_argument("--calls", type=int, default=5, help="labelled this many times")
    parser.add_argument("--top", type=int, default=20, help="functions listed")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    clf = demo_classifier(args.video, model)
    tracks = api.track(args.video, model, frames=FrameRange(0, args.frames))
    label_window(clf, tracks)  # warm-up
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for _ in range(args.calls):
        label_window(clf, tracks)
    profile.disable()
    per_call = (time.perf_counter() - started) / args.calls
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(args.top)
    print(text.getvalue())
    print(f"label_window: {per_call * 1e3:.1f} ms per call (under cProfile) on {tracks.num_frames} frames x "
          f"{tracks.keypoints.shape[2]} keypoints; {len(clf.classes)} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
