"""Keypoint suite: the DEFAULT config trained on each development clip under one budget, then the
unsupervised-keypoint protocol on that clip's labels, beside the same baselines.

For every clip (one after another, never two trainings at once):

1. train the default config (no per-clip settings) on the clip's training video for ``--minutes``
   (or ``--steps``), or reuse ``<out>/<clip>/checkpoint.pt`` with ``--reuse``;
2. run the detector on the clip's labelled frames and fit, with 5-fold cross-validation in both
   fold modes (``shuffled`` and contiguous ``blocks``): ridge regression from all keypoints to each
   labelled part (full regression; each training fold chooses its penalty by leave-one-out, or
   on contiguous blocks of its rows with ``--penalty blocks``), and per part the best single
   keypoint under an affine fit;
3. the same for the baselines in the same harness: mean pose, blob moments, blob centroid, 8×8
   grey thumbnail, and an untrained network of the same config and crops.

Clips (``../shared/data``):

- ``dlc-openfield``: top-view mouse; train ``m3v1mp4.mp4``, HUMAN labels on 116 images of
  another session (snout, ears, tail base);
- ``lp-mirror-mouse``: head-fixed mouse, side view + mirror view from below; train
  ``test_vid.mp4``, HUMAN labels on 90 images of other sessions (paws, tail, nose, obstacle);
- ``faces-fomm``: train ``00.mp4``; evaluate on every 3rd frame of ``04/08/10.mp4`` against
  PSEUDO-labels: dlib's 68-point landmarks (needs ``pip install "fomm_kp[faces]"``), a subset of
  11 points;
- ``sleap-dance``: train ``dance.mp4``; PSEUDO-labels: the 17 COCO keypoints a SLEAP model
  predicted on every frame (``dance.mp4.labels.slp``), every 2nd frame.

Writes ``<out>/<clip>/suite.json`` per clip and ``<out>/suite.md`` (the table) and
``<out>/suite.json`` (all clips). The judged fold mode is ``blocks``: on video, shuffled folds put
each test frame's neighbours in training and flatter every method.

    python scripts/keypoint_suite.py --minutes 15                  # the judged run (about 70 min)
    python scripts/keypoint_suite.py --steps 300 --clips dlc-openfield lp-mirror-mouse
    python scripts/keypoint_suite.py --reuse --out runs/suite      # evaluate trained checkpoints again
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

log = logging.getLogger("keypoint_suite")

# dlib's 68-point indices (0-based) kept as face pseudo-labels, and which of them are "moving parts".
FACE_POINTS = {
    "jaw_left": 4, "chin": 8, "jaw_right": 12, "eye_left_outer": 36, "eye_right_outer": 45, "nose_tip": 30,
    "mouth_left": 48, "mouth_right": 54, "lip_top": 51, "lip_bottom": 57, "brow_center": 27,
}
FACE_MOVING = ("mouth_left", "mouth_right", "lip_bottom")
DANCE_MOVING = ("left_wrist", "right_wrist")


@dataclass(frozen=True)
class EvalSet:
    """Labelled frames of one clip, ready for the harness."""

    frames: np.ndarray  # uint8 (M, H, W, 3)
    points: np.ndarray  # float32 (M, P, 2)
    part_names: tuple[str, ...]
    labels: str  # what the labels are (human / pseudo)
    background_video: Path | None  # the scene for blob moments; None: median of the frames
    # Labels over time, for jitter and smoothing: the videos whose every frame is labelled
    # (float32 (T, P, 2) per video), and where the evaluated frames sit in them (video, frame).
    label_videos: tuple[tuple[Path, np.ndarray], ...] = ()
    frame_sources: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Clip:
    name: str
    train_video: str  # under the data folder
    moving_parts: Callable[[tuple[str, ...]], tuple[str, ...]]
    load: Callable[[argparse.Namespace], EvalSet]
    paw_parts: tuple[str, ...] = ()  # parts with an absolute best-single target (px)


def _labelled(csv_path: Path, kind: str) -> EvalSet:
    from fomm_kp.evaluation.labels import load_labels

    labelled = load_labels(csv_path)
    return EvalSet(labelled.load_images(), labelled.points, labelled.part_names, kind, None)


def _openfield(args: argparse.Namespace) -> EvalSet:
    folder = args.data / "dlc-openfield" / "labeled-data" / "m4s1"
    return _labelled(folder / "CollectedData_Pranav.csv", "human (116 images of another session)")


def _mirror(args: argparse.Namespace) -> EvalSet:
    return _labelled(args.data / "lp-mirror-mouse" / "CollectedData.csv", "human (90 images of other sessions)")


def _faces(args: argparse.Namespace) -> EvalSet:
    from fomm_kp.evaluation.landmarks import DlibLandmarks
    from fomm_kp.video import iter_frames

    folder = args.data / "faces-fomm"
    detector = None
    frames, points, sources, label_videos = [], [], [], []
    for v, name in enumerate(("04.mp4", "08.mp4", "10.mp4")):
        video_frames = np.stack([f for _, f in iter_frames(folder / name)])
        cache = args.out / "cache" / f"faces_dlib_{Path(name).stem}.npz"
        if cache.is_file():
            with np.load(cache, allow_pickle=False) as data:
                landmarks = data["points"]
        else:
            detector = detector or DlibLandmarks()
            landmarks = np.full((len(video_frames), 68, 2), np.nan, np.float32)
            for i, frame in enumerate(video_frames):
                found = detector(frame)
                if found is not None:
                    landmarks[i] = found
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, points=landmarks)
        subset = landmarks[:, list(FACE_POINTS.values())]
        label_videos.append((folder / name, subset))
        for i in range(0, len(video_frames), 3):
            if np.isfinite(subset[i]).all():
                frames.append(video_frames[i])
                points.append(subset[i])
                sources.append((v, i))
    return EvalSet(np.stack(frames), np.stack(points), tuple(FACE_POINTS), f"PSEUDO: dlib 68-point landmarks "
                   f"({len(frames)} frames of 3 held-out speakers, every 3rd frame)", None, tuple(label_videos),
                   tuple(sources))


def _dance(args: argparse.Namespace) -> EvalSet:
    import sleap_io as sio

    from fomm_kp.video import iter_frames

    folder = args.data / "sleap-dance"
    labels = sio.load_slp(str(folder / "dance.mp4.labels.slp"), open_videos=False)
    points = np.asarray(labels.numpy(untracked=True), dtype=np.float32)[:, 0]  # (T, 17, 2), first instance
    names = tuple(labels.skeletons[0].node_names)
    frames = np.stack([f for _, f in iter_frames(folder / "dance.mp4")])
    every = points[: len(frames)]
    index = np.arange(0, min(len(frames), len(points)), 2)
    index = index[np.isfinite(points[index]).any(axis=(1, 2))]
    return EvalSet(frames[index], points[index], names, f"PSEUDO: SLEAP model predictions ({len(index)} frames, "
                   "every 2nd frame of the training video)", folder / "dance.mp4",
                   ((folder / "dance.mp4", every),), tuple((0, int(i)) for i in index))


def _paws(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in names if n.startswith("paw"))


CLIPS = {
    "dlc-openfield": Clip("dlc-openfield", "dlc-openfield/videos/m3v1mp4.mp4",
                          lambda names: tuple(n for n in names if n in ("snout", "tailbase")), _openfield),
    "lp-mirror-mouse": Clip("lp-mirror-mouse", "lp-mirror-mouse/videos/test_vid.mp4",
                            lambda names: tuple(n for n in names if n.startswith(("paw", "nose", "tailBase"))),
                            _mirror, paw_parts=("paw1LH_top", "paw2LF_top", "paw3RF_top", "paw4RH_top",
                                                "paw1LH_bot", "paw2LF_bot", "paw3RF_bot", "paw4RH_bot")),
    "faces-fomm": Clip("faces-fomm", "faces-fomm/00.mp4", lambda names: FACE_MOVING, _faces),
    "sleap-dance": Clip("sleap-dance", "sleap-dance/dance.mp4", lambda names: DANCE_MOVING, _dance),
}
# Where today's default was chosen: the clips its settings were compared on.
CHOSEN_ON = {"dlc-openfield": "yes (heading rule, separation prior, frame size)"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", nargs="+", choices=sorted(CLIPS), default=list(CLIPS))
    parser.add_argument("--minutes", type=float, default=15.0, help="training time per clip")
    parser.add_argument("--steps", type=int, default=None, help="training steps per clip (instead of a time limit)")
    parser.add_argument("--config", default="cpu", help="the config trained on every clip (default: the CPU default)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "suite")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--reuse", action="store_true", help="evaluate <out>/<clip>/checkpoint.pt, train none")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--penalty", choices=("loo", "blocks"), default="loo",
                        help="how each training fold chooses the ridge penalty (default: leave-one-out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smooth-windows", type=int, nargs="+", default=[5, 7, 9], help="smoothing windows for jitter")
    parser.add_argument("--smooth-order", type=int, default=2, help="smoothing polynomial degree (0-3)")
    return parser.parse_args(argv)


def train_clip(clip: Clip, args: argparse.Namespace, folder: Path):
    from fomm_kp import api

    if args.reuse:
        return api.load_model(folder / "checkpoint.pt"), {"reused": str(folder / "checkpoint.pt")}
    last = {"step": 0}

    def progress(update) -> None:
        if update.done - last["step"] >= 100:
            last["step"] = update.done
            log.info("%s: step %d, loss %.4f", clip.name, update.done, (update.losses or {}).get("total", np.nan))

    started = time.monotonic()
    minutes = 0.0 if args.steps is not None else args.minutes
    steps = args.steps if args.steps is not None else 10**9
    model = api.train(args.data / clip.train_video, folder, config=args.config, minutes=minutes, steps=steps,
                      seed=args.seed, progress=progress, existing="overwrite")
    return model, {"minutes_wall": (time.monotonic() - started) / 60.0, "steps": int(model.step),
                   "config": args.config, "video": str(args.data / clip.train_video)}


def check_targets(result: dict, moving: tuple[str, ...], paws: tuple[str, ...]) -> dict:
    """The issue's acceptance targets on one fold mode's evaluation dict."""
    methods = result["methods"]
    trained, untrained = methods["fomm_kp (trained)"], methods["untrained (same config)"]
    full = trained["regression"]["mean"]
    blob, thumb = methods["blob moments"]["regression"]["mean"], methods["thumbnail 8x8"]["regression"]["mean"]
    out = {
        "full regression": full,
        "full <= 0.8 x thumbnail": {"limit": 0.8 * thumb, "met": full <= 0.8 * thumb},
        "full <= 0.6 x blob moments": {"limit": 0.6 * blob, "met": full <= 0.6 * blob},
        "untrained clearly worse (full, single)": {
            "untrained": [untrained["regression"]["mean"], untrained["best_single"]["mean"]],
            "met": untrained["regression"]["mean"] > 1.2 * full
            and untrained["best_single"]["mean"] > 1.2 * trained["best_single"]["mean"],
        },
        "moving parts: best single <= 0.5 x blob moments' best single": {
            name: {"value": trained["best_single"][name], "limit": 0.5 * methods["blob moments"]["best_single"][name],
                   "met": trained["best_single"][name] <= 0.5 * methods["blob moments"]["best_single"][name]}
            for name in moving
        },
    }
    if paws:
        out["paws: best single <= 10 px"] = {
            name: {"value": trained["best_single"][name], "met": trained["best_single"][name] <= 10.0} for name in paws
        }
    return out


def evaluate_clip(clip: Clip, model, data: EvalSet, args: argparse.Namespace) -> dict:
    from fomm_kp.config import LocalizeConfig
    from fomm_kp.evaluation.harness import evaluate_model_on_labels, untrained_like
    from fomm_kp.evaluation.keypoints import CrossValidation
    from fomm_kp.evaluation.labels import LabelledFrames
    from fomm_kp.localize.background import estimate_background

    labelled = LabelledFrames(data.points, data.part_names, ("",) * len(data.points),
                              np.arange(len(data.points)), source=clip.name)
    models = {"fomm_kp (trained)": model, "untrained (same config)": untrained_like(model, args.seed)}
    background = None if data.background_video is None else estimate_background(data.background_video, LocalizeConfig())
    moving = clip.moving_parts(data.part_names)
    report = {}
    for mode in ("shuffled", "blocks"):
        evaluation = evaluate_model_on_labels(labelled, models, frames=data.frames, background=background,
                                              protocol=CrossValidation(args.folds, mode, args.seed,
                                                                       penalty=args.penalty))
        print(f"\n{clip.name} ({mode})\n{evaluation.table()}")
        report[mode] = evaluation.to_dict()
        report[mode]["targets"] = check_targets(report[mode], moving, clip.paw_parts)
    report["moving_parts"] = list(moving)
    return report


def temporal_report(clip: Clip, model, data: EvalSet, args: argparse.Namespace) -> dict:
    """Jitter of the tracks on still frames, raw and smoothed; with labels over time, the labels'
    own jitter and the full regression from raw and smoothed tracks at the labelled frames."""
    from fomm_kp import api
    from fomm_kp.evaluation.keypoints import CrossValidation, PoseFeatures, evaluate_keypoints
    from fomm_kp.evaluation.temporal import displacement, jitter, still_from_frames, still_from_labels
    from fomm_kp.tracks.smoothing import Smoothing, smooth_keypoints
    from fomm_kp.video import FrameRange

    windows, order = args.smooth_windows, args.smooth_order
    videos = [v for v, _ in data.label_videos] or [args.data / clip.train_video]
    report: dict = {"videos": [str(v) for v in videos], "still": "stillest 20% of consecutive-frame pairs "
                    + ("by label displacement" if data.label_videos else "by mean grey difference"),
                    "smoothing_order": order}
    still_all, per_video = [], []
    for v, video in enumerate(videos):
        tracks = api.track(video, model, frames=FrameRange(0, 600))
        report.setdefault("on_subject", []).append(tracks.metadata.get("on_subject"))
        points, scores = tracks.keypoints[:, 0], tracks.scores[:, 0]
        if data.label_videos:
            labels = data.label_videos[v][1][: len(points)]
            still = still_from_labels(labels)
            report.setdefault("label_jitter_px", []).append(float(np.nanmedian(displacement(labels)[still])))
        else:
            still = still_from_frames(video, len(points))
        still_all.append(still)
        per_video.append((points, {w: smooth_keypoints(points, scores, Smoothing(window=w, order=order)) for w in windows}))
    report["jitter_px"] = jitter([points for points, _ in per_video], still_all)
    report["jitter_smoothed_px"] = {str(w): jitter([smoothed[w] for _, smoothed in per_video], still_all) for w in windows}
    if "label_jitter_px" in report:
        label = float(np.mean(report["label_jitter_px"]))
        report["jitter_ratio_to_labels"] = report["jitter_px"] / label
        report["jitter_smoothed_ratio_to_labels"] = {w: j / label for w, j in report["jitter_smoothed_px"].items()}
    if data.frame_sources:
        methods = {}
        rows = [(v, i) for v, i in data.frame_sources]
        inside = np.array([i < len(per_video[v][0]) for v, i in rows])
        methods["tracks, raw"] = PoseFeatures(points=np.stack([per_video[v][0][i] for v, i in np.array(rows)[inside]]))
        for w in windows:
            methods[f"tracks, smoothed ({w})"] = PoseFeatures(
                points=np.stack([per_video[v][1][w][i] for v, i in np.array(rows)[inside]]))
        evaluation = evaluate_keypoints(data.points[inside], methods, data.part_names,
                                        CrossValidation(args.folds, "blocks", args.seed, penalty=args.penalty))
        report["regression_blocks"] = {name: float(np.nanmean(r.regression)) for name, r in evaluation.results.items()}
        # Leave-one-out, which chooses the ridge's penalty above, is flattered by smoothed tracks
        # (each frame's neighbours carry nearly its features): the same with the penalty chosen on
        # contiguous blocks, and the best single keypoint of the moving parts (no penalty at all).
        by_blocks = evaluation if args.penalty == "blocks" else evaluate_keypoints(
            data.points[inside], methods, data.part_names, CrossValidation(args.folds, "blocks", args.seed, penalty="blocks"))
        report["regression_blocks_penalty_by_blocks"] = {name: float(np.nanmean(r.regression))
                                                         for name, r in by_blocks.results.items()}
        moving = [data.part_names.index(name) for name in clip.moving_parts(data.part_names)]
        report["best_single_moving_blocks"] = {name: float(np.nanmean(r.single[moving]))
                                               for name, r in evaluation.results.items() if r.single is not None}
        report["regression_frames"] = int(inside.sum())
    return report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(results: dict) -> str:
    """Markdown: one row per clip, contiguous-block folds."""
    lines = [
        "| clip | labels | default chosen here | steps | full: trained / untrained / blob moments / thumbnail | "
        "best single, moving parts: trained / untrained / blob moments | targets met |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        b = r["evaluation"]["blocks"]
        m = b["methods"]
        moving = r["evaluation"]["moving_parts"]
        full = " / ".join(_fmt(m[k]["regression"]["mean"]) for k in
                          ("fomm_kp (trained)", "untrained (same config)", "blob moments", "thumbnail 8x8"))

        def moving_mean(method: str) -> float:
            return float(np.mean([m[method]["best_single"][p] for p in moving]))

        single = " / ".join(_fmt(moving_mean(k)) for k in ("fomm_kp (trained)", "untrained (same config)", "blob moments"))
        t = b["targets"]
        met = [t["full <= 0.8 x thumbnail"]["met"], t["full <= 0.6 x blob moments"]["met"],
               t["untrained clearly worse (full, single)"]["met"]]
        met += [v["met"] for v in t["moving parts: best single <= 0.5 x blob moments' best single"].values()]
        met += [v["met"] for v in t.get("paws: best single <= 10 px", {}).values()]
        steps = r["training"].get("steps", "reused")
        lines.append(f"| {name} | {r['labels']} | {CHOSEN_ON.get(name, 'no')} | {steps} | {full} | {single} | "
                     f"{sum(met)}/{len(met)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    from fomm_kp.files import atomic_write

    if not args.data.is_dir():
        print(f"error: development data not found at {args.data}", file=sys.stderr)
        return 2
    results = {}
    for name in args.clips:
        clip = CLIPS[name]
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        model, training = train_clip(clip, args, folder)
        data = clip.load(args)
        started = time.monotonic()
        evaluation = evaluate_clip(clip, model, data, args)
        temporal = temporal_report(clip, model, data, args)
        print(f"{clip.name}: temporal {json.dumps(temporal)}")
        result = {
            "clip": name, "labels": data.labels, "training": training, "evaluation": evaluation, "temporal": temporal,
            "evaluation_seconds": time.monotonic() - started,
            "model_meta": {k: v for k, v in model.meta.items() if k != "losses"},
            "command": " ".join(["scripts/keypoint_suite.py"] + (argv if argv is not None else sys.argv[1:])),
            "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        }
        results[name] = result
        text = json.dumps(result, indent=2) + "\n"
        atomic_write(folder / "suite.json", lambda tmp: Path(tmp).write_text(text))
    md = table(results)
    print("\n" + md)
    atomic_write(args.out / "suite.md", lambda tmp: Path(tmp).write_text(md + "\n"))
    all_text = json.dumps(results, indent=2) + "\n"
    atomic_write(args.out / "suite.json", lambda tmp: Path(tmp).write_text(all_text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
