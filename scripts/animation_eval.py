"""Motion-transfer and reconstruction check on the development faces (and optionally the fly).

    python scripts/animation_eval.py --faces runs/faces/checkpoint.pt [--fly runs/fly/checkpoint.pt] --out runs/animation_eval

With a faces model trained on ``faces-fomm/00.mp4``:
- animates ``04.mp4``'s first frame with ``00.mp4``'s motion and ``00.mp4``'s first frame with
  ``04.mp4``'s (relative motion, best frame), side by side with keypoints;
- reconstruction L1 / AKD / MKR (dlib landmarks unless ``--landmarks``) on the held-out videos
  04, 08, 10 and, separately, on the training video 00;
- with ``--fly``: animates frame 100 of ``single_fly.mp4`` with frames 2000-2300 of the same video.
Writes the videos, a PNG strip of frames of each (for looking at), and ``report.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from fomm_kp.animation.render import PanelOptions, TransferOptions, animate
from fomm_kp.evaluation.reconstruction import PAPER_VOXCELEB_256, evaluate_reconstruction
from fomm_kp.runtime import Model
from fomm_kp.video import FrameRange, read_frames

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def strip(video: Path, out: Path, count: int = 5) -> Path:
    """Stack ``count`` evenly spaced frames of ``video`` vertically into a PNG."""
    import imageio.v3 as iio

    indices, frames = read_frames(video)
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    iio.imwrite(out, np.concatenate([frames[i] for i in picks], axis=0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, required=True, help="checkpoint trained on faces-fomm/00.mp4")
    parser.add_argument("--fly", type=Path, help="checkpoint trained on sleap-fly-centered/single_fly.mp4")
    parser.add_argument("--out", type=Path, default=Path("runs/animation_eval"))
    parser.add_argument("--landmarks", default="dlib", help="auto, dlib or face-alignment")
    parser.add_argument("--stride", type=int, default=1, help="driving-frame stride for the reconstruction")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    faces = args.data / "faces-fomm"
    report: dict = {"faces_checkpoint": str(args.faces)}

    model = Model.load(args.faces)
    report["faces_step"] = model.step
    report["faces_meta"] = {k: v for k, v in model.meta.items() if k != "losses"}
    for source, driving in (("04", "00"), ("00", "04")):
        out = args.out / f"faces_{source}_driven_by_{driving}.mp4"
        started = time.monotonic()
        result = animate(faces / f"{source}.mp4", faces / f"{driving}.mp4", model, out, TransferOptions(best_frame=True),
                         PanelOptions(side_by_side=True, show_keypoints=True, size=256))
        report[out.stem] = {"frames": result.num_frames, "seconds": round(time.monotonic() - started, 1),
                            "reference_frame": result.reference_frame, "movement_scale": result.movement_scale}
        strip(out, args.out / f"{out.stem}.png")

    for name, videos in (("held_out", ["04", "08", "10"]), ("training_video", ["00"])):
        started = time.monotonic()
        rec = evaluate_reconstruction(model, [faces / f"{v}.mp4" for v in videos], landmarks=args.landmarks,
                                      frames=FrameRange(stride=args.stride))
        report[f"reconstruction_{name}"] = dict(rec.to_dict(), seconds=round(time.monotonic() - started, 1))

    if args.fly is not None:
        fly_model = Model.load(args.fly)
        video = args.data / "sleap-fly-centered" / "single_fly.mp4"
        out = args.out / "fly_frame100_driven_by_2000-2300.mp4"
        result = animate(video, video, fly_model, out, TransferOptions(best_frame=True),
                         PanelOptions(side_by_side=True, show_keypoints=True, size=192), source_frame=100,
                         frames=FrameRange(2000, 2300))
        report[out.stem] = {"frames": result.num_frames, "reference_frame": result.reference_frame,
                            "movement_scale": result.movement_scale, "step": fly_model.step}
        strip(out, args.out / f"{out.stem}.png")

    report["reference_fomm_voxceleb_256"] = PAPER_VOXCELEB_256
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if not k.startswith("reconstruction")}, indent=2))
    for name in ("held_out", "training_video"):
        rec = report[f"reconstruction_{name}"]
        print(f"{name}: L1 {rec['l1']:.4f} AKD {rec['akd']} MKR {rec['mkr']} | copy-source L1 {rec['baseline_l1']:.4f} "
              f"AKD {rec['baseline_akd']} ({rec['landmarks']}, {rec['frames']} frames)")


if __name__ == "__main__":
    main()
