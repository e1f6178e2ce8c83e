"""Two interacting flies (SLEAP's ``centered_pair_small.mp4``): per-fly keypoints against SLEAP's predictions.

Trains fomm_kp with ``--subjects 2`` on the clip (no labels; ``--minutes``), or takes ``--checkpoint``;
tracks both flies; matches, frame by frame, SLEAP's predicted instances (27 fragmented tracks: used
for positions only) to our two identities by nearest assignment of centroids; then, per fly, regresses
that fly's SLEAP nodes from that fly's own keypoints (ridge, 5 contiguous-block folds) and reports the
pixel error per node group, beside baselines run in the same harness: the mean pose, the moments of
the two largest foreground blobs (no identities: larger blob first), our localiser's moments of the
fly (centre and heading axis, identities kept), an untrained network in the same crops, and, with
``--baseline-minutes``, today's single-subject pipeline (trained on whole frames: all its keypoints
for each fly). Also: per node group the best single keypoint under an affine fit, and identity
switches (our identity of a SLEAP instance changing within one of SLEAP's track fragments).

    python scripts/pair_accuracy.py --minutes 15 --baseline-minutes 15 --threads 2
    python scripts/pair_accuracy.py --checkpoint runs/pair/subjects/checkpoint.pt --baseline-minutes 0

Writes ``<out>/pair_accuracy.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "sleap-fly-centered"
BODY = ("head", "thorax", "abdomen", "wingL", "wingR")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--checkpoint", type=Path, help="evaluate this two-subject model instead of training one")
    parser.add_argument("--localise-only", action="store_true",
                        help="only the localiser: positions, headings and identities against SLEAP's (no detector)")
    parser.add_argument("--minutes", type=float, default=15.0, help="training time of the two-subject model")
    parser.add_argument("--baseline-minutes", type=float, default=0.0,
                        help="also train today's single-subject model on whole frames this long (0: skip)")
    parser.add_argument("--config", default="cpu")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "pair")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args(argv)


def train(video: Path, out: Path, config, minutes: float):
    from fomm_kp import api

    return api.train(video, out, config=config, minutes=minutes, steps=10**7, existing="overwrite")


def reference(data: Path, frames: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """SLEAP's predicted instances ``(T, tracks, nodes, 2)`` and node names."""
    import sleap_io as sio

    labels = sio.load_slp(str(data / "centered_pair_predictions.slp"), open_videos=False)
    return labels.numpy()[:frames].astype(np.float64), tuple(labels.skeletons[0].node_names)


def match(centres: np.ndarray, sleap: np.ndarray, min_nodes: int = 5) -> np.ndarray:
    """Per frame and subject, the SLEAP instance nearest to our subject's centre (Hungarian on
    centroid distances; -1: none): int ``(T, N)``. Instances of fewer than ``min_nodes`` predicted
    nodes (SLEAP's stray fragments of two or three nodes) are left out."""
    from scipy.optimize import linear_sum_assignment

    out = np.full(centres.shape[:2], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # instances absent from a frame: all NaN
        instance_centres = np.nanmean(sleap, axis=2)  # (T, tracks, 2)
    instance_centres[np.isfinite(sleap[..., 0]).sum(axis=2) < min_nodes] = np.nan
    for t in range(len(centres)):
        ours = np.flatnonzero(np.isfinite(centres[t]).all(axis=1))
        theirs = np.flatnonzero(np.isfinite(instance_centres[t]).all(axis=1))
        if len(ours) and len(theirs):
            cost = np.linalg.norm(centres[t, ours][:, None] - instance_centres[t, theirs][None], axis=-1)
            rows, cols = linear_sum_assignment(cost)
            out[t, ours[rows]] = theirs[cols]
    return out


def switches(matched: np.ndarray) -> int:
    """Times our identity of one SLEAP track fragment changes from one frame where it is matched to the next."""
    count = 0
    for fragment in np.unique(matched[matched >= 0]):
        ids = [int(np.flatnonzero(row == fragment)[0]) for row in matched if (row == fragment).any()]
        count += sum(a != b for a, b in zip(ids[:-1], ids[1:]))
    return count


def localisation(located, sleap: np.ndarray, nodes: tuple[str, ...], matched: np.ndarray) -> dict:
    """Our subjects' centres against the matched SLEAP thorax, and our headings against SLEAP's thorax → head."""
    thorax, head = nodes.index("thorax"), nodes.index("head")
    distances, turns = [], []
    for t, fly in zip(*np.nonzero(matched >= 0)):
        instance = sleap[t, matched[t, fly]]
        if np.isfinite(instance[thorax]).all():
            distances.append(np.linalg.norm(located.centres[t, fly] - instance[thorax]))
        if np.isfinite(instance[[thorax, head]]).all():
            forward = instance[head] - instance[thorax]
            turns.append(abs(np.angle(np.exp(1j * (np.arctan2(forward[1], forward[0]) - located.angles[t, fly])))))
    distances, turns = np.array(distances), np.degrees(turns)
    return {"centre_to_thorax_px": {"median": float(np.median(distances)), "p95": float(np.percentile(distances, 95)),
                                    "max": float(distances.max())},
            "heading_error_deg": {"median": float(np.median(turns)), "reversed_share": float(np.mean(turns > 90))},
            "found_fraction": located.found.mean(axis=0).tolist(), "present_fraction": located.present.mean(axis=0).tolist(),
            "identity_confidence_p5": float(np.percentile(located.identity, 5))}


def evaluate(features: np.ndarray, labels: np.ndarray, folds: int) -> float:
    """Mean held-out error (px) over parts of ridge regression from ``features`` ``(M, F)`` to ``labels`` ``(M, P, 2)``."""
    from fomm_kp.evaluation.regression import kfold_indices, regression_errors

    return float(np.nanmean(regression_errors(features, labels, kfold_indices(len(labels), folds, "blocks"))))


def single(keypoints: np.ndarray, labels: np.ndarray, folds: int) -> float:
    from fomm_kp.evaluation.regression import kfold_indices, single_keypoint_errors

    errors, _ = single_keypoint_errors(keypoints, labels, kfold_indices(len(labels), folds, "blocks"))
    return float(np.nanmean(errors))


def blob_features(video: Path, frames: int) -> np.ndarray:
    """The two largest foreground blobs' moments per frame (centroid and axis ends, larger first): ``(T, 12)``."""
    from fomm_kp.config import LocalizeConfig
    from fomm_kp.localize.background import estimate_background, reduce_frame
    from fomm_kp.localize.blobs import foreground_parts, part_blob
    from fomm_kp.video import iter_frames

    config = LocalizeConfig()
    background = estimate_background(video, config)
    out = np.full((frames, 12), np.nan)
    for t, frame in iter_frames(video, stop=frames):
        diff, labels, area, _, _, _ = foreground_parts(reduce_frame(frame, background.factor), background, config)
        for slot, i in enumerate(np.argsort(area[1:])[::-1][:2] + 1):
            blob = part_blob(labels == i, diff, background.factor, 1.0, config)
            out[t, 6 * slot:6 * slot + 6] = np.concatenate([blob.centre, blob.ends.ravel()])
    return out


def per_fly(name: str, tracks, labels_of, rows_of, folds: int, results: dict) -> None:
    """Full regression (and best single keypoint) per fly and node group for one set of tracks; tracks
    of one subject (a whole-frame model) give all their keypoints to each fly."""
    for fly in range(2):
        rows = rows_of[fly]
        kp = tracks.keypoints[rows, 0 if tracks.num_subjects == 1 else fly].astype(np.float64)
        for group, labels in labels_of[fly].items():
            results.setdefault(name, {}).setdefault(group, {})[f"fly{fly}"] = {
                "regression_px": evaluate(kp.reshape(len(rows), -1), labels, folds),
                "best_single_keypoint_px": single(kp, labels, folds)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from fomm_kp import api
    from fomm_kp.config import load_config
    from fomm_kp.localize.multi import subjects_for_video
    from fomm_kp.runtime import Model

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    video = args.data / "centered_pair_small.mp4"
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    config = load_config(args.config)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, subjects=2))
    located = subjects_for_video(video, config.data.localize_config(), config.data.identity, 2)
    sleap, nodes = reference(args.data, len(located))
    matched = match(located.centres.astype(np.float64), sleap)
    summary = {"video": str(video), "frames": len(located), "identity_switches_vs_sleap_fragments": switches(matched),
               "sleap_fragments": int(sleap.shape[1]), "localiser": localisation(located, sleap, nodes, matched),
               "localiser_seconds": round(time.time() - started, 1)}
    if args.localise_only:
        return _finish(summary, args, started)
    model = api.load_model(args.checkpoint) if args.checkpoint else train(video, args.out / "subjects", config,
                                                                          args.minutes)
    tracks = api.track(video, model, out=args.out / "pair.npz")
    rows_of = [np.flatnonzero(matched[:, fly] >= 0) for fly in range(2)]
    labels_of = []
    for fly in range(2):
        instance = sleap[rows_of[fly], matched[rows_of[fly], fly]]  # (M, nodes, 2)
        labels_of.append({"body5": instance[:, [nodes.index(n) for n in BODY]], "all24": instance})
    results: dict = {}
    per_fly("fomm_kp, two subjects", tracks, labels_of, rows_of, args.folds, results)
    torch.manual_seed(1)
    untrained = Model(type(model.network)(model.config.model), model.config, dict(model.meta), 0)
    per_fly("untrained network, same crops", api.track(video, untrained), labels_of, rows_of, args.folds, results)
    blobs = blob_features(video, tracks.num_frames)
    ends = np.stack([np.cos(located.angles), np.sin(located.angles)], axis=-1) * located.side / 3.0
    own = np.concatenate([located.centres, located.centres + ends, located.centres - ends], axis=-1)  # (T, 2, 6)
    for fly in range(2):
        rows = rows_of[fly]
        for group, labels in labels_of[fly].items():
            entry = results.setdefault("baselines", {}).setdefault(group, {}).setdefault(f"fly{fly}", {})
            entry["mean_pose_px"] = evaluate(np.zeros((len(rows), 0)), labels, args.folds)
            entry["two_largest_blobs_moments_px"] = evaluate(blobs[rows], labels, args.folds)
            entry["own_blob_moments_px"] = evaluate(own[rows, fly], labels, args.folds)
    if args.baseline_minutes > 0:
        single_model = train(video, args.out / "single", load_config(args.config), args.baseline_minutes)
        per_fly("today's single-subject model (whole frames)", api.track(video, single_model), labels_of, rows_of,
                args.folds, results)
    summary.update({"training_steps": int(getattr(model, "step", 0)),
                    "matched_frames_per_fly": [int(len(r)) for r in rows_of], "results": results})
    return _finish(summary, args, started)


def _finish(summary: dict, args: argparse.Namespace, started: float) -> int:
    summary.update({"seconds": round(time.time() - started, 1), "machine": platform.processor() or platform.machine(),
                    "load_average": [round(v, 2) for v in os.getloadavg()],
                    "args": {k: str(v) for k, v in vars(args).items()}})
    name = "pair_localisation.json" if args.localise_only else "pair_accuracy.json"
    (args.out / name).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
