"""Short clips: does a model trained on long footage find the subject in 4–30-frame clips of the same rig?

Cuts ``--clips`` short clips (lengths ``--min-length`` … ``--max-length`` frames, random starts,
seeded) out of a long video, writes each as its own .mp4, and localises each the way ``track`` does
with the checkpoint: once against the clip's own frames (a median of a few frames, which still holds
the subject) and once as shipped (the training video's empty scene stored in the checkpoint, used
for clips shorter than a background needs). For each it counts the clips where the subject was
found in no frame (``track`` then centres the boxes in an empty frame) and measures the box centres'
distance from the boxes localised on the whole long video at the same frames.

    python scripts/short_clips.py --video ../shared/data/dlc-openfield/videos/m3v1mp4.mp4 \
        --checkpoint runs/openfield/checkpoint.pt --clips 80 --out runs/short_clips.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fomm_kp.checkpoint import read_checkpoint
from fomm_kp.crops import Scene
from fomm_kp.localize.background import estimate_background
from fomm_kp.localize.crop_rule import model_crops
from fomm_kp.video import VideoWriter, iter_frames, probe


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, required=True, help="a long video of the rig the model was trained on")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=80)
    parser.add_argument("--min-length", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=26)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON report (default: print only)")
    parser.add_argument("--training-video", type=Path, default=None,
                        help="for checkpoints written before models kept their empty scene: compute it from "
                             "this video as training does")
    return parser.parse_args(argv)


def cut(video: Path, start: int, length: int, path: Path, fps: float) -> None:
    with VideoWriter(path, fps=fps) as writer:
        for _, frame in iter_frames(video, start=start, stop=start + length):
            writer.write(frame)


def centres(crops, count: int) -> np.ndarray:
    """Box centres ``(count, 2)`` of the first ``count`` frames (NaN where the subject was not found)."""
    boxes = crops.boxes[:count, :4]
    middle = (boxes[:, :2] + boxes[:, 2:4]) / 2.0
    return np.where(crops.found[:count, None], middle, np.nan)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checkpoint = read_checkpoint(args.checkpoint)
    crop, data = checkpoint.crop, checkpoint.config.data
    if not crop.localized:
        print("the model was not trained on localised crops: nothing to measure", file=sys.stderr)
        return 2
    if crop.scene is None:
        if args.training_video is None:
            print("the checkpoint keeps no empty scene (written before models kept it): pass --training-video",
                  file=sys.stderr)
            return 2
        background = estimate_background(args.training_video, data.localize_config())
        image = np.clip(np.round(background.image), 0, 255).astype(np.uint8)
        crop = dataclasses.replace(crop, scene=Scene(image, background.factor, background.frame_width,
                                                     background.frame_height))
    info = probe(args.video)
    started = time.time()
    reference = model_crops(args.video, crop, data)  # the whole long video, localised as track does
    rng = np.random.default_rng(args.seed)
    side = int(round(crop.box_side))
    before = dataclasses.replace(crop, scene=None)  # track before models kept their scene
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.clips):
            length = int(rng.integers(args.min_length, args.max_length + 1))
            start = int(rng.integers(0, info.num_frames - length))
            path = Path(folder) / f"clip{i:03d}.mp4"
            cut(args.video, start, length, path, info.fps)
            truth = centres(reference, start + length)[start:]
            row = {"start": start, "length": length}
            own = model_crops(path, before, data)  # against the clip's own median
            shipped = model_crops(path, crop, data)  # the stored empty scene
            for name, located in (("own_median", own), ("stored_scene", shipped)):
                found = located.found[:length]
                error = np.linalg.norm(centres(located, length) - truth, axis=1)
                row[name] = {"frames_found": int(found.sum()),
                             "median_centre_error_px": float(np.nanmedian(error)) if np.isfinite(error).any() else None}
            rows.append(row)
    summary = {}
    for name in ("own_median", "stored_scene"):
        none_found = sum(r[name]["frames_found"] == 0 for r in rows)
        errors = [r[name]["median_centre_error_px"] for r in rows if r[name]["median_centre_error_px"] is not None]
        off = sum(e > side / 4 for e in errors)
        summary[name] = {"clips_with_no_frame_found": none_found,
                         "clips_off_by_more_than_a_quarter_box": off,
                         "median_centre_error_px": float(np.median(errors)) if errors else None}
    report = {"command": " ".join(sys.argv), "video": str(args.video), "checkpoint": str(args.checkpoint),
              "box_side_px": side, "clips": len(rows), "lengths": [args.min_length, args.max_length],
              "summary": summary, "rows": rows, "seconds": round(time.time() - started, 1),
              "machine": f"{platform.machine()}, {platform.system()}, python {platform.python_version()}"}
    for name, values in summary.items():
        print(f"{name:>13}: no frame found in {values['clips_with_no_frame_found']}/{len(rows)} clips; "
              f"box centre more than a quarter box ({side / 4:.0f} px) off in "
              f"{values['clips_off_by_more_than_a_quarter_box']}; median centre error {values['median_centre_error_px']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
