"""Few-shot behaviour benchmark on the B-SOiD example videos: keypoint features vs a pixel baseline.

Data: ``../shared/data/bsoid-behaviour/behavioral_videos/<behaviour>_hstacked.mp4``, 11 behaviours,
each frame holding 3 examples side by side (tiles at x = 0/450/900, each 450x360, 15 fps). Each
tile is one labelled clip, so every behaviour has 3 examples: 1-shot episodes have 2 query clips
per behaviour, 2-shot episodes 1; 4-shot is impossible here and is reported as skipped.

Feature sets (same windows, same classifiers, same random episode draws):
- ``pixel``: frame-difference motion energy in a 4x4 grid of cells of each tile (no keypoints);
- ``blob``: keypoint features of a keypoint-free stand-in tracker (dark blob on the arena: its
  centroid, the two ends of its long axis and the two sides of its short axis), which shows what
  the keypoint pipeline does with crude points before a detector exists (``--blob``);
- ``keypoints``: keypoint features of detector tracks: from ``--tracks-dir`` (files
  ``<behaviour>_tile<i>.npz``, any format ``load_tracks`` reads), from ``--checkpoint``, or after
  training a detector with ``fomm_kp.api.train`` (``--train-minutes`` / ``--train-steps``) on
  ``<out>/tiles.mp4``, all 33 tiles one after another (450x360); the detector tracks that video
  and the tracks are split back per tile into ``<out>/tracks/`` (reusable with --tracks-dir).

Examples::

    python scripts/bsoid_benchmark.py --pixel-only                     # no detector needed
    python scripts/bsoid_benchmark.py --blob                           # + blob stand-in keypoints
    python scripts/bsoid_benchmark.py --train-minutes 20 --config gpu --out runs/bsoid   # train, track, compare
    python scripts/bsoid_benchmark.py --tracks-dir runs/bsoid/tracks   # reuse tracks

Writes ``<out>/results.json``, a confusion-matrix PNG per feature set and shot count, and prints
a table of mean ± sd accuracy and macro-F1 over episodes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

# Many small fits: one BLAS thread each is many times faster than OpenBLAS threads fighting over
# 2 busy cores (measured 17x on the development machine). Must be set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from fomm_kp.behaviour.features import motion_features
from fomm_kp.behaviour.signals import resolve_config
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.errors import FommError
from fomm_kp.evaluation.behaviour import evaluate_clip_set
from fomm_kp.evaluation.clips import Clip, motion_energy, motion_energy_features
from fomm_kp.tracks import Tracks, load_tracks, save_tracks
from fomm_kp.video import VideoWriter, iter_frames, probe

log = logging.getLogger("bsoid_benchmark")

TILE_W, TILE_H, TILES = 450, 360, 3
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bsoid-behaviour" / "behavioral_videos"


def tile_box(i: int) -> tuple[int, int, int, int]:
    return (i * TILE_W, 0, (i + 1) * TILE_W, TILE_H)


def list_videos(data: Path) -> dict[str, Path]:
    videos = {p.name.removesuffix("_hstacked.mp4"): p for p in sorted(data.glob("*_hstacked.mp4"))}
    if not videos:
        raise FommError(f"no *_hstacked.mp4 videos in {data}")
    return videos


def _box_down(grey: np.ndarray, factor: int) -> np.ndarray:
    """Box-average ``(..., H, W)`` by ``factor`` in both directions."""
    if factor == 1:
        return grey
    h, w = grey.shape[-2] // factor * factor, grey.shape[-1] // factor * factor
    g = grey[..., :h, :w]
    return g.reshape(g.shape[:-2] + (h // factor, factor, w // factor, factor)).mean(axis=(-3, -1))


def read_tiles(video: Path, downscale: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Decode a video once: ``(frame_indices, [grey tile frames (T, H/d, W/d) float32] * 3)``."""
    indices, tiles = [], [[] for _ in range(TILES)]
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    for index, frame in iter_frames(video):
        grey = frame.astype(np.float32) @ weights
        for i in range(TILES):
            x0, y0, x1, y1 = tile_box(i)
            tiles[i].append(_box_down(grey[y0:y1, x0:x1], downscale))
        indices.append(index)
    return np.asarray(indices), [np.stack(t) for t in tiles]


# ---------------------------------------------------------------------------------------------
# Blob stand-in tracker (keypoint-free): dark animal on a light arena
# ---------------------------------------------------------------------------------------------


def blob_tracks(grey: np.ndarray, background: np.ndarray, frames: np.ndarray, fps: float, x_offset: float,
                scale: float = 1.0, threshold: float = 35.0, video: str = "") -> Tracks:
    """Five points of the largest dark blob per frame: centre, front/back ends of the long axis
    (±2 sd; sign kept continuous over time), left/right sides of the short axis (±2 sd).

    ``grey (T, h, w)`` is the tile reduced by ``scale``; points are returned in original-frame
    pixels (multiplied by ``scale``, shifted by the tile's ``x_offset``)."""
    from skimage.measure import label, regionprops

    t = len(grey)
    kp = np.full((t, 1, 5, 2), np.nan, dtype=np.float32)
    prev_axis = None
    for f in range(t):
        mask = (background - grey[f]) > threshold
        regions = regionprops(label(mask))
        if not regions:
            continue
        r = max(regions, key=lambda q: q.area)
        if r.area < 30 / scale**2:
            continue
        cy, cx = r.centroid
        cov = np.cov(np.stack([r.coords[:, 1], r.coords[:, 0]]).astype(np.float64))
        vals, vecs = np.linalg.eigh(cov)
        major, minor = vecs[:, 1], vecs[:, 0]
        if prev_axis is not None and np.dot(major, prev_axis) < 0:
            major = -major
        prev_axis = major
        minor = np.array([-major[1], major[0]])
        lm, ls = 2 * np.sqrt(max(vals[1], 0)), 2 * np.sqrt(max(vals[0], 0))
        c = np.array([cx, cy])
        points = np.array([c, c + lm * major, c - lm * major, c + ls * minor, c - ls * minor]) * scale
        kp[f, 0] = points + np.array([x_offset, 0.0])
    scores = np.where(np.isnan(kp[..., 0]), 0.0, 1.0).astype(np.float32)
    return Tracks(kp, scores, frames, fps, video=video, keypoint_names=("centre", "front", "back", "left", "right"))


# ---------------------------------------------------------------------------------------------
# Detector (fomm_kp.api) path
# ---------------------------------------------------------------------------------------------


def write_tiles_video(videos: dict[str, Path], path: Path, fps: float) -> dict[tuple[str, int], tuple[int, int]]:
    """All tiles of all videos one after another as one 450x360 video (the detector's training
    video); returns the ``[first, last + 1)`` frame range of each (behaviour, tile) in it."""
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    row = 0
    with VideoWriter(path, fps=fps) as writer:
        for name, video in videos.items():
            for i in range(TILES):
                first = row
                for _, frame in iter_frames(video, crop=tile_box(i)):
                    writer.write(frame)
                    row += 1
                ranges[(name, i)] = (first, row)
    return ranges


def detector_tracks(args: argparse.Namespace, videos: dict[str, Path], out: Path) -> dict[tuple[str, int], Tracks]:
    """Tracks per (behaviour, tile) from --tracks-dir, or from a detector (--checkpoint, or trained
    here with fomm_kp.api.train on the tiles video) run over the tiles video, split back per tile.

    Tracking the tiles video (not the 1350x360 originals with a crop) shows the detector exactly
    what it was trained on, including its own localisation; keypoints are then in tile pixels.
    """
    tracks: dict[tuple[str, int], Tracks] = {}
    if args.tracks_dir:
        for name in videos:
            for i in range(TILES):
                matches = sorted(Path(args.tracks_dir).glob(f"{name}_tile{i}.*"))
                if not matches:
                    raise FommError(f"no tracks for {name} tile {i} in {args.tracks_dir} (expected {name}_tile{i}.npz)")
                tracks[(name, i)] = load_tracks(matches[0])
        return tracks
    from fomm_kp import api

    fps = probe(next(iter(videos.values()))).fps
    tiles_video = out / "tiles.mp4"
    log.info("writing the tiles video %s", tiles_video)
    ranges = write_tiles_video(videos, tiles_video, fps)
    if args.checkpoint:
        model = api.load_model(args.checkpoint)
    else:
        log.info("training a detector on %s (steps=%s, minutes=%s)", tiles_video, args.train_steps, args.train_minutes)
        model = api.train(tiles_video, out / "detector", config=args.config, steps=args.train_steps,
                          minutes=args.train_minutes)
    whole = api.track(tiles_video, model)
    save_tracks(whole, out / "tiles_tracks.npz")
    (out / "tracks").mkdir(parents=True, exist_ok=True)
    for (name, i), (a, b) in ranges.items():
        rows = (whole.frame_indices >= a) & (whole.frame_indices < b)
        part = whole.select_frames(rows)
        tr = Tracks(part.keypoints, part.scores, part.frame_indices - a, part.fps, part.jacobians, part.covariances,
                    video=f"{name}_tile{i}", keypoint_names=part.keypoint_names, subject_names=part.subject_names)
        save_tracks(tr, out / "tracks" / f"{name}_tile{i}.npz")
        tracks[(name, i)] = tr
    return tracks


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def evaluate(clips: list[Clip], shots: list[int], kinds: list[str], episodes: int, seed: int, out: Path, tag: str) -> dict:
    # Groups are the tile positions (0/450/900 px), so leave-one-group-out leaves one position out.
    return evaluate_clip_set(clips, shots, kinds, episodes, seed, out, tag,
                             group_name="tile-position", title_prefix="B-SOiD ")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=Path("runs/bsoid"))
    p.add_argument("--pixel-only", action="store_true", help="run the pixel baseline alone (no keypoints)")
    p.add_argument("--blob", action="store_true", help="add the blob stand-in keypoints")
    p.add_argument("--tracks-dir", type=Path, help="precomputed tracks <behaviour>_tile<i>.npz")
    p.add_argument("--checkpoint", type=Path, help="detector checkpoint to track the tiles with")
    p.add_argument("--train-minutes", type=float, default=None, help="train a detector on the tiles for this long")
    p.add_argument("--train-steps", type=int, default=None, help="train a detector on the tiles for this many steps")
    p.add_argument("--config", default=None, help="detector training config: cpu (default), gpu, tiny or a YAML file")
    p.add_argument("--behaviours", nargs="+", default=None, help="only these behaviours (quick checks)")
    p.add_argument("--shots", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--kinds", nargs="+", default=["prototype", "logistic", "knn"])
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window-seconds", type=float, nargs="+", default=[0.5, 2.0])
    p.add_argument("--stride-seconds", type=float, default=0.25)
    p.add_argument("--grid", type=int, default=4, help="pixel baseline grid cells per side")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.time()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    videos = list_videos(args.data)
    if args.behaviours:
        unknown = sorted(set(args.behaviours) - set(videos))
        if unknown:
            raise FommError(f"unknown behaviours {unknown}; the data has {sorted(videos)}")
        videos = {k: v for k, v in videos.items() if k in args.behaviours}
    config = FeatureConfig(window_seconds=tuple(args.window_seconds), stride_seconds=args.stride_seconds)
    want_detector = not args.pixel_only and (args.tracks_dir or args.checkpoint or args.train_minutes or args.train_steps)

    pixel_clips: list[Clip] = []
    sorted_clips: list[Clip] = []
    tile_medians: list[np.ndarray] = []
    fps = probe(next(iter(videos.values()))).fps
    blob = args.blob and not args.pixel_only
    for name, video in videos.items():
        # motion energy at quarter resolution; the blob tracker's background at half resolution
        frames, tiles = read_tiles(video, downscale=2)
        for i, grey in enumerate(tiles):
            energy = motion_energy(_box_down(grey, 2), (args.grid, args.grid))
            feats = motion_energy_features(energy, frames, fps, config, video=f"{name}_tile{i}")
            pixel_clips.append(Clip(name, feats, group=f"tile{i}"))
            feats = motion_energy_features(energy, frames, fps, config, video=f"{name}_tile{i}", sort_cells=True)
            sorted_clips.append(Clip(name, feats, group=f"tile{i}"))
            if blob:
                tile_medians.append(np.median(grey, axis=0))
    log.info("pixel features: %d clips, %d columns", len(pixel_clips), pixel_clips[0].features.num_features)

    results: dict = {
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()})",
        "protocol": "each tile is one clip (3 per behaviour); query clip label = argmax of mean window log-probability; "
        "same seeded episode draws for every feature set; leave-one-tile-position-out trains on 2 tile positions, tests on the third",
        "feature_config": config.to_dict(),
        "pixel": evaluate(pixel_clips, args.shots, args.kinds, args.episodes, args.seed, out, "pixel"),
        "pixel_sorted": evaluate(sorted_clips, args.shots, args.kinds, args.episodes, args.seed, out, "pixel_sorted"),
    }
    track_sets: dict[str, dict[tuple[str, int], Tracks]] = {}
    if blob:
        # the arena without animals: median over all 33 tiles' median frames (animals sit in different places)
        background = np.median(np.stack(tile_medians), axis=0)
        blob_tr: dict[tuple[str, int], Tracks] = {}
        for name, video in videos.items():
            frames, tiles = read_tiles(video, downscale=2)
            for i, grey in enumerate(tiles):
                blob_tr[(name, i)] = blob_tracks(grey, background, frames, fps, tile_box(i)[0], scale=2.0,
                                                 video=f"{name}_tile{i}")
        track_sets["blob"] = blob_tr
        (out / "blob_tracks").mkdir(exist_ok=True)
        for (name, i), tr in blob_tr.items():
            save_tracks(tr, out / "blob_tracks" / f"{name}_tile{i}.npz")
    if want_detector:
        track_sets["keypoints"] = detector_tracks(args, videos, out)
    for tag, tracks in track_sets.items():
        cfg = resolve_config(list(tracks.values()), config)
        clips = [Clip(name, motion_features(tr, cfg), group=f"tile{i}") for (name, i), tr in tracks.items()]
        missing = float(np.mean([np.isnan(tr.keypoints).any(axis=-1).mean() for tr in tracks.values()]))
        log.info("%s features: %d clips, %d columns, %.1f%% points missing", tag, len(clips), clips[0].features.num_features, 100 * missing)
        results[tag] = evaluate(clips, args.shots, args.kinds, args.episodes, args.seed, out, tag)
        results[tag]["missing_point_fraction"] = missing
    results["seconds"] = time.time() - start
    (out / "results.json").write_text(json.dumps(results, indent=2))

    sets = [s for s in ("pixel", "pixel_sorted", "blob", "keypoints") if s in results]
    print(f"\nB-SOiD few-shot behaviour ({len(videos)} behaviours x 3 tiles, {args.episodes} episodes, clip-level)")
    print(f"{'features':<12} {'classifier':<10} {'protocol':<34} {'accuracy':>15} {'macro-F1':>15}")
    for s in sets:
        for key, r in results[s].items():
            if not isinstance(r, dict):
                continue
            kind, proto = key.split("/")
            if "skipped" in r:
                print(f"{s:<12} {kind:<10} {proto:<34} {'skipped: too few clips per behaviour':>31}")
            elif "accuracy_mean" in r:
                print(f"{s:<12} {kind:<10} {str(r['n_way']) + '-way ' + proto:<34} "
                      f"{r['accuracy_mean']:>8.3f} ± {r['accuracy_sd']:.3f} {r['macro_f1_mean']:>8.3f} ± {r['macro_f1_sd']:.3f}")
            else:
                print(f"{s:<12} {kind:<10} {proto:<34} {r['accuracy']:>15.3f} {r['macro_f1']:>15.3f}")
    print(f"\nchance = {1 / len(videos):.3f}; wrote {out / 'results.json'} in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
