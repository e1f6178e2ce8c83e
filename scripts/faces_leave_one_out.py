"""Leave-one-speaker-out motion transfer on the development faces (``faces-fomm``), FOMM's protocol.

Train one model on every ``faces-fomm`` clip but the held-out one (``animation-cpu`` config by
default, ``--minutes`` of training), then on the held-out speaker:

* reconstruction with the FOMM papers' protocol (source = the clip's first frame, driving = every
  frame, the model's own keypoints for both): L1, AKD and MKR (dlib 68-point landmarks), AED (dlib
  face-recognition embedding), beside copying the source frame; once at the model's image size (the
  papers' protocol) and once at the video's own 256 px, rendered as ``animate`` renders;
* motion transfer as a new user tries it: the held-out speaker's first frame driven by a training
  clip (relative motion, best frame): the result alone (at the source's size) and source | driving
  | result, plus a PNG grid of frames of it.

    python scripts/faces_leave_one_out.py --held-out 04 --minutes 30 --threads 2 --out runs/faces_loso
    # or in two parts: the time-bounded training alone (e.g. under a lock), then the evaluation
    python scripts/faces_leave_one_out.py --held-out 04 --minutes 30 --train-only --out runs/faces_loso
    python scripts/faces_leave_one_out.py --held-out 04 --checkpoint runs/faces_loso/model/checkpoint.pt --out runs/faces_loso

Writes ``<out>/report.json`` (figures, steps, training time, machine load before and after),
``<out>/model/`` (checkpoint, previews), ``<out>/transfer.mp4``, ``<out>/side_by_side.mp4`` and
``<out>/grid.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "faces-fomm"
CLIPS = ("00", "04", "08", "10")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the faces-fomm folder")
    parser.add_argument("--held-out", default="04", choices=CLIPS, help="the speaker evaluated (not trained on)")
    parser.add_argument("--checkpoint", type=Path, help="evaluate this model instead of training one")
    parser.add_argument("--train-only", action="store_true", help="train, write <out>/training.json, stop")
    parser.add_argument("--config", default="animation-cpu", help="built-in config name or YAML file")
    parser.add_argument("--minutes", type=float, default=30.0, help="training time limit")
    parser.add_argument("--steps", type=int, default=None, help="training step limit (default: the config's)")
    parser.add_argument("--driving", default=None, choices=CLIPS, help="driving clip for the transfer video "
                        "(default: the first training clip)")
    parser.add_argument("--stride", type=int, default=1, help="driving-frame stride of the reconstruction")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "faces_loso")
    return parser.parse_args(argv)


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def train(args: argparse.Namespace, clips: list[Path]) -> tuple[object, dict]:
    import fomm_kp

    started, load = time.monotonic(), load_average()
    model = fomm_kp.train(clips, args.out / "model", config=args.config, minutes=args.minutes, steps=args.steps,
                          seed=args.seed, existing="overwrite", device="cpu")
    seconds = time.monotonic() - started
    return model, {"clips": [p.name for p in clips], "steps": model.step, "seconds": round(seconds, 1),
                   "load_before": load, "load_after": load_average(), "config": str(args.config),
                   "threads": args.threads, "date": time.strftime("%Y-%m-%d %H:%M")}


def reconstruction(model: object, video: Path, stride: int) -> dict:
    from fomm_kp.evaluation.reconstruction import evaluate_reconstruction
    from fomm_kp.video import FrameRange

    found = {}
    for resolution in ("model", "full"):
        started = time.monotonic()
        report = evaluate_reconstruction(model, [video], landmarks="dlib", identity="dlib", resolution=resolution,
                                         frames=FrameRange(stride=stride))
        found[resolution] = dict(report.to_dict(), seconds=round(time.monotonic() - started, 1))
        found[resolution].pop("videos")
    return found


def grid(side_by_side: Path, out: Path, rows: int = 4) -> Path:
    """A PNG of ``rows`` evenly spaced frames of the side-by-side video, stacked."""
    import imageio.v3 as iio

    from fomm_kp.video import read_frames

    _, frames = read_frames(side_by_side)
    picks = np.linspace(0, len(frames) - 1, rows + 1)[1:].round().astype(int)
    spacer = np.full((4, frames.shape[2], 3), 255, dtype=np.uint8)
    stacked = np.concatenate([part for i in picks for part in (frames[i], spacer)][:-1], axis=0)
    iio.imwrite(out, stacked)
    return out


def transfer(model: object, source: Path, driving: Path, out: Path) -> dict:
    from fomm_kp.animation.render import PanelOptions, TransferOptions, animate

    found = {}
    for name, panels in (("transfer", PanelOptions()), ("side_by_side", PanelOptions(side_by_side=True))):
        started = time.monotonic()
        result = animate(source, driving, model, out / f"{name}.mp4", TransferOptions(best_frame=True), panels)
        found[name] = {"path": str(result.path), "frames": result.num_frames, "frame_size": list(result.frame_size),
                       "reference_frame": result.reference_frame, "movement_scale": round(result.movement_scale, 3),
                       "seconds": round(time.monotonic() - started, 1)}
    found["grid"] = str(grid(out / "side_by_side.mp4", out / "grid.png"))
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    from fomm_kp.evaluation.reconstruction import PAPER_VOXCELEB_256
    from fomm_kp.runtime import load_model

    held_out = args.data / f"{args.held_out}.mp4"
    training = [args.data / f"{c}.mp4" for c in CLIPS if c != args.held_out]
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"held_out": held_out.name, "machine": platform.processor() or platform.machine(),
                    "threads": args.threads, "date": time.strftime("%Y-%m-%d %H:%M")}
    if args.checkpoint is not None:
        model = load_model(args.checkpoint)
        record = args.checkpoint.parent.parent / "training.json"  # written by a --train-only run
        report["training"] = json.loads(record.read_text()) if record.is_file() else {}
        report["training"].update(checkpoint=str(args.checkpoint), steps=model.step)
    else:
        model, report["training"] = train(args, training)
        (args.out / "training.json").write_text(json.dumps(report["training"], indent=2))
        if args.train_only:
            print(f"training: {report['training']}")
            return 0
    report["reconstruction"] = reconstruction(model, held_out, args.stride)
    driving = args.data / f"{args.driving}.mp4" if args.driving else training[0]
    report["transfer"] = dict(transfer(model, held_out, driving, args.out), source=held_out.name, driving=driving.name)
    report["reference_fomm_voxceleb_256"] = PAPER_VOXCELEB_256
    report["load_at_end"] = load_average()
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    for resolution, rec in report["reconstruction"].items():
        ratio = rec["l1"] / rec["baseline_l1"]
        print(f"{held_out.name} at {resolution} resolution: L1 {rec['l1']:.4f} vs copy-source {rec['baseline_l1']:.4f} "
              f"(x{ratio:.3f}); AKD {rec['akd']} vs {rec['baseline_akd']}; MKR {rec['mkr']} vs {rec['baseline_mkr']}; "
              f"AED {rec['aed']} vs {rec['baseline_aed']}")
    print(f"training: {report['training']}")
    print(f"report -> {args.out / 'report.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
