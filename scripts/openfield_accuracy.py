"""Keypoint accuracy on DeepLabCut's open-field mouse, with the unsupervised-keypoint protocol.

Train fomm_kp on ``videos/m3v1mp4.mp4`` (no labels; CPU default config, ``--minutes``), or take
``--checkpoint``; run the detector on the 116 labelled images of ANOTHER session (``m4s1``, same rig
and camera); regress the 4 labelled parts (snout, ears, tail base) from the discovered keypoints
with k-fold ridge regression; report the pixel error per part next to the baselines run in the same
harness (mean pose, blob moments, blob centroid, 8×8 thumbnail) and an untrained network of the same
config; and, per part, the error of the best single keypoint under an affine fit.

    python scripts/openfield_accuracy.py --baselines-only
    python scripts/openfield_accuracy.py --minutes 13.5 --threads 2    # trains, then evaluates (≤ 15 min)
    python scripts/openfield_accuracy.py --checkpoint runs/openfield/checkpoint.pt

Writes ``<out>/openfield_accuracy.json`` (both fold modes, the targets and whether they are met) and
``<out>/keypoints_on_labels.png`` (eight labelled images as the detector saw them: its keypoints in
colour, the labelled parts in white).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dlc-openfield"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the dlc-openfield folder")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help="evaluate this model instead of training one")
    source.add_argument("--baselines-only", action="store_true", help="no detector: baselines only")
    parser.add_argument("--minutes", type=float, default=13.5,
                        help="training time limit (when training); localisation and loading add ~1 minute")
    parser.add_argument("--steps", type=int, default=None, help="training step limit (default: the config's)")
    parser.add_argument("--config", default="cpu", help="training config: a built-in name or a YAML file")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "openfield", help="output folder")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--background", choices=("images", "video"), default="images",
                        help="background for blob moments and subject boxes: the median of the labelled "
                             "images (default) or of the training video")
    parser.add_argument("--confidence", action="store_true", help="add keypoint scores to the regression")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def train_model(args: argparse.Namespace, video: Path):
    from fomm_kp import api

    last = {"step": 0}

    def progress(update) -> None:
        if update.done - last["step"] >= 100:
            last["step"] = update.done
            logging.info("step %d, %.0f s, loss %.4f", update.done, time.monotonic() - started,
                         update.losses.get("total", float("nan")))

    started = time.monotonic()
    model = api.train(video, args.out, config=args.config, minutes=args.minutes, steps=args.steps,
                      seed=args.seed, progress=progress)
    return model, {"minutes_wall": (time.monotonic() - started) / 60.0, "steps": int(model.step),
                   "config": args.config, "video": str(video)}


def targets(evaluation, trained: str | None, untrained: str | None) -> dict:
    """The issue's acceptance targets, checked on one evaluation."""
    if trained is None:
        return {}
    r = evaluation.results
    full = float(np.mean(r[trained].regression))
    blob = float(np.mean(r["blob moments"].regression))
    thumb = float(np.mean(r["thumbnail 8x8"].regression))
    single = r[trained].single
    centroid = r["blob centroid"].single
    out = {
        "full_regression_px": full,
        "full <= 0.6 x blob moments": {"limit": 0.6 * blob, "met": full <= 0.6 * blob},
        "full <= 0.8 x thumbnail": {"limit": 0.8 * thumb, "met": full <= 0.8 * thumb},
        "best single <= 0.6 x blob centroid, per part": {
            name: {"value": float(s), "limit": float(0.6 * c), "met": bool(s <= 0.6 * c)}
            for name, s, c in zip(evaluation.part_names, single, centroid)
        },
    }
    if untrained is not None:
        u = float(np.mean(r[untrained].regression))
        us = float(np.mean(r[untrained].single))
        out["untrained"] = {"full_regression_px": u, "best_single_px": us,
                            "trained better (full)": full < u, "trained better (single)": float(np.mean(single)) < us}
    return out


def draw_figure(model, frames: np.ndarray, labels: np.ndarray, background, path: Path, count: int = 8) -> None:
    """Eight labelled images, each as the crop the detector saw (turned to the heading when the
    model was trained so), 160 px: discovered keypoints in colour, labelled parts as white dots."""
    import imageio.v3 as iio

    from fomm_kp.config import LocalizeConfig
    from fomm_kp.crops import frame_to_crop
    from fomm_kp.evaluation.harness import detect_keypoints, model_boxes
    from fomm_kp.files import atomic_write
    from fomm_kp.localize.background import background_from_frames
    from fomm_kp.video import crop_frame, resize_frame
    from fomm_kp.viz import draw_keypoints, image_row

    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    if background is None:
        background = background_from_frames(frames, LocalizeConfig())
    boxes, _ = model_boxes(model, frames, background)
    if boxes is None:
        h, w = frames.shape[1:3]
        boxes = np.tile(np.array([0, 0, w, h], dtype=np.float64), (len(frames), 1))
    keypoints, _ = detect_keypoints(model, frames[picks], boxes[picks])
    size = 160
    tiles = []
    for row, i in enumerate(picks):
        tile = resize_frame(np.ascontiguousarray(crop_frame(frames[i], boxes[i])), size)
        tile = draw_keypoints(tile, frame_to_crop(keypoints[row : row + 1], boxes[i : i + 1], size)[0], radius=3)
        white = np.full((labels.shape[1], 3), 255, dtype=np.uint8)
        tile = draw_keypoints(tile, frame_to_crop(labels[i : i + 1], boxes[i : i + 1], size)[0], white, radius=2)
        tiles.append(tile)
    half = (count + 1) // 2
    grid = np.concatenate([image_row(tiles[:half]), np.full((2, image_row(tiles[:half]).shape[1], 3), 255, np.uint8),
                           image_row(tiles[half:] + [np.full_like(tiles[0], 255)] * (2 * half - count))], axis=0)
    atomic_write(path, lambda tmp: iio.imwrite(tmp, grid, extension=".png"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    from fomm_kp.config import LocalizeConfig
    from fomm_kp.evaluation.harness import evaluate_model_on_labels, untrained_like
    from fomm_kp.evaluation.keypoints import CrossValidation
    from fomm_kp.evaluation.labels import load_labels
    from fomm_kp.files import atomic_write
    from fomm_kp.localize.background import estimate_background

    video = args.data / "videos" / "m3v1mp4.mp4"
    labels_file = args.data / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv"
    if not labels_file.is_file() or not video.is_file():
        print(f"error: dlc-openfield data not found under {args.data}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)

    models, training = {}, None
    if args.checkpoint is not None:
        from fomm_kp.runtime import load_model

        model = load_model(args.checkpoint)
    elif not args.baselines_only:
        model, training = train_model(args, video)
    else:
        model = None
    if model is not None:
        models["fomm_kp (trained)"] = model
        models["untrained (same config)"] = untrained_like(model, args.seed)

    labelled = load_labels(labels_file)
    frames = labelled.load_images()
    background = estimate_background(video, LocalizeConfig()) if args.background == "video" else None
    report = {
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch_threads": torch.get_num_threads()},
        "background": args.background,
        "training": training,
        "checkpoint": None if args.checkpoint is None else str(args.checkpoint),
        "model_meta": None if model is None else {k: v for k, v in model.meta.items() if k != "losses"},
    }
    for mode in ("shuffled", "blocks"):
        started = time.monotonic()
        evaluation = evaluate_model_on_labels(labelled, models, frames=frames, background=background,
                                              protocol=CrossValidation(args.folds, mode, args.seed, args.confidence))
        print(evaluation.table())
        print()
        report[mode] = evaluation.to_dict()
        report[mode]["targets"] = targets(evaluation, "fomm_kp (trained)" if model else None,
                                          "untrained (same config)" if model else None)
        report[mode]["seconds"] = time.monotonic() - started
        if model is not None:
            print(json.dumps(report[mode]["targets"], indent=1))
    if model is not None:
        draw_figure(model, frames, labelled.points, background, args.out / "keypoints_on_labels.png")
        print(f"wrote {args.out / 'keypoints_on_labels.png'}")
    path = args.out / "openfield_accuracy.json"
    text = json.dumps(report, indent=2) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
