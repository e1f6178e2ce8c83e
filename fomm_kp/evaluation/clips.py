"""Labelled clips for behaviour evaluation: a clip table on disk, keypoint-feature clips cut from tracks,
and the pixel baseline (frame-difference motion energy in a grid of cells) over the same windows."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from fomm_kp.behaviour.features import Features, motion_features
from fomm_kp.behaviour.signals import resolve_config
from fomm_kp.behaviour.windows import FeatureConfig, window_bounds, window_stats
from fomm_kp.errors import FommError
from fomm_kp.tracks import Tracks, load_tracks
from fomm_kp.tracks.io import TRACK_SUFFIXES
from fomm_kp.video import iter_frames, probe

__all__ = ["Clip", "motion_energy", "motion_energy_features", "pixel_features", "read_clip_table", "keypoint_clips",
           "check_clip_videos", "pixel_clips"]


@dataclass(frozen=True, eq=False)
class Clip:
    """One labelled example: its window features, its label and the group it comes from."""

    label: str
    features: Features
    group: str = ""


def motion_energy(frames: np.ndarray, grid: tuple[int, int] = (4, 4)) -> np.ndarray:
    """Mean absolute grey-level change per grid cell between consecutive frames.

    Args:
        frames: uint8 ``(T, H, W, 3)`` (or ``(T, H, W)`` grey).
        grid: ``(rows, cols)`` of cells.

    Returns:
        float32 ``(T, rows * cols)`` in grey levels (0–255) per frame; row 0 is NaN (no previous frame).
    """
    frames = np.asarray(frames)
    if frames.ndim == 4:
        grey = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    elif frames.ndim == 3:
        grey = frames.astype(np.float32)
    else:
        raise FommError(f"frames must be (T, H, W, 3) or (T, H, W), got {frames.shape}")
    rows, cols = grid
    t, h, w = grey.shape
    if rows < 1 or cols < 1 or rows > h or cols > w:
        raise FommError(f"bad grid {grid} for frames of {h}x{w}")
    diff = np.abs(np.diff(grey, axis=0))
    ys = np.linspace(0, h, rows + 1).astype(int)
    xs = np.linspace(0, w, cols + 1).astype(int)
    out = np.full((t, rows * cols), np.nan, dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            out[1:, r * cols + c] = diff[:, ys[r] : ys[r + 1], xs[c] : xs[c + 1]].mean(axis=(1, 2))
    return out


def motion_energy_features(
    energy: np.ndarray,
    frame_indices: np.ndarray,
    fps: float,
    config: FeatureConfig | None = None,
    video: str = "",
    sort_cells: bool = False,
) -> Features:
    """Window statistics of per-frame motion energy ``(T, G)`` over the windows keypoint features use.

    Per window length: mean, sd and max of every cell, and of the whole-frame mean, in grey levels
    per second. Frame indices must be evenly spaced (the windows are cut exactly as
    :func:`fomm_kp.behaviour.features.motion_features` cuts them for tracks on the same frames).
    ``sort_cells`` sorts each frame's cell energies in decreasing order first, which makes the
    features blind to where in the frame the motion happens (cell names become ``rank<i>``).
    """
    config = config or FeatureConfig()
    energy = np.asarray(energy, dtype=np.float64)
    frames = np.asarray(frame_indices, dtype=np.int64)
    if energy.ndim != 2 or len(energy) != len(frames):
        raise FommError(f"energy must be (T, G) with T = {len(frames)} frames, got {energy.shape}")
    steps = np.diff(frames)
    if steps.size and not np.all(steps == steps[0]):
        raise FommError("motion energy needs evenly spaced frames")
    step = int(steps[0]) if steps.size else 1
    fs = fps / step
    if sort_cells:
        energy = -np.sort(-energy, axis=1)  # NaN rows stay NaN
    valid = np.isfinite(energy)
    frame_mean = np.where(valid, energy, 0.0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    frame_mean[~valid.any(axis=1)] = np.nan
    signal = np.concatenate([energy, frame_mean[:, None]], axis=1) * fs  # grey levels per second
    prefix = "rank" if sort_cells else "cell"
    cell_names = [f"{prefix}{i}" for i in range(energy.shape[1])] + ["frame"]
    blocks, names = [], []
    bounds = window_bounds(len(frames), fs, config)
    for (a, b), seconds in zip(bounds, config.window_seconds):
        for stat in ("mean", "std", "max"):
            blocks.append(window_stats(signal, a, b, stat))
            names += [f"{c}.energy.{stat}@{seconds:g}s" for c in cell_names]
    a0, b0 = bounds[0]
    return Features(
        np.concatenate(blocks, axis=1), tuple(names), frames[a0], frames[b0 - 1] + step, fps, video, config.to_dict()
    )


def pixel_features(
    video: str | os.PathLike,
    crop: Sequence[float] | None = None,
    config: FeatureConfig | None = None,
    grid: tuple[int, int] = (4, 4),
    start: int = 0,
    stop: int | None = None,
    downscale: int = 4,
) -> Features:
    """Motion-energy features of a video (or a crop of it) over frames ``[start, stop)``.

    Frames are reduced by ``downscale`` (box average) before differencing, which changes little
    for cell means and saves time.
    """
    info = probe(video)
    energies, indices, prev = [], [], None
    rows, cols = grid
    for index, frame in iter_frames(video, start=start, stop=stop, crop=crop):
        grey = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if downscale > 1:
            h, w = (grey.shape[0] // downscale) * downscale, (grey.shape[1] // downscale) * downscale
            grey = grey[:h, :w].reshape(h // downscale, downscale, w // downscale, downscale).mean(axis=(1, 3))
        if prev is None:
            energies.append(np.full(rows * cols, np.nan, dtype=np.float32))
        else:
            energies.append(motion_energy(np.stack([prev, grey]), grid)[1])
        prev = grey
        indices.append(index)
    if not indices:
        raise FommError(f"no frames read from {video} in [{start}, {stop})")
    return motion_energy_features(np.stack(energies), np.asarray(indices), info.fps, config, str(video))


def read_clip_table(path: str | os.PathLike) -> list[dict]:
    """Read clips: ``video,start_frame,end_frame,label`` (end inclusive), optional ``tracks``
    (a tracks file per clip), ``group`` (for leave-one-group-out; default the video) and a crop box
    ``x0,y0,x1,y1`` (for the pixel baseline, e.g. one tile of a tiled video)."""
    path = Path(path)
    if not path.is_file():
        raise FommError(f"clip table not found: {path}")
    try:
        df = pd.read_csv(path, keep_default_na=False, dtype=str)
    except ValueError as exc:  # not UTF-8, not CSV, empty
        raise FommError(f"{path} is not a clip table CSV ({' '.join(str(exc).split())[:120]})") from None
    needed = {"video", "start_frame", "end_frame", "label"}
    if not needed <= set(df.columns):
        raise FommError(f"{path} must have columns video,start_frame,end_frame,label (has {list(df.columns)})")
    crop_cols = ["x0", "y0", "x1", "y1"]
    has_crop = set(crop_cols) <= set(df.columns)
    rows = []
    for i, r in df.iterrows():
        try:
            row = {"video": r["video"].strip(), "start": int(r["start_frame"]), "end": int(r["end_frame"]), "label": r["label"].strip()}
            row["crop"] = tuple(float(r[c]) for c in crop_cols) if has_crop and all(r[c] != "" for c in crop_cols) else None
        except ValueError as exc:
            raise FommError(f"{path} row {i + 2}: {exc}") from exc
        if row["end"] < row["start"] or not row["label"]:
            raise FommError(f"{path} row {i + 2}: bad frame range or empty label")
        row["tracks"] = r["tracks"].strip() if "tracks" in df.columns and r["tracks"].strip() else None
        row["group"] = r["group"].strip() if "group" in df.columns and r["group"].strip() else Path(row["video"]).stem
        rows.append(row)
    if not rows:
        raise FommError(f"{path} lists no clips")
    return rows


def _resolve(base: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else base / p


def keypoint_clips(rows: Sequence[dict], base_dir: str | os.PathLike, tracks_dir: str | os.PathLike | None = None,
                   config: FeatureConfig | None = None) -> list[Clip]:
    """Keypoint-feature clips: each row's frames cut from its tracks (the ``tracks`` column, or
    ``tracks_dir/<video name>.*``), features computed per clip with one shared config."""
    base = Path(base_dir)
    cache: dict[Path, Tracks] = {}
    pieces = []
    for row in rows:
        if row["tracks"]:
            path = _resolve(base, row["tracks"])
        elif tracks_dir is not None:
            stem = Path(row["video"]).stem
            found = sorted(p for p in Path(tracks_dir).glob(f"{stem}.*") if p.suffix.lower() in TRACK_SUFFIXES)
            if not found:
                raise FommError(f"no tracks file for video '{row['video']}' in {tracks_dir} (expected {stem}.npz)")
            path = found[0]
        else:
            raise FommError("clips need tracks: give a tracks column in the table or a tracks folder")
        if path not in cache:
            cache[path] = load_tracks(path)
        tracks = cache[path]
        keep = (tracks.frame_indices >= row["start"]) & (tracks.frame_indices <= row["end"])
        if keep.sum() < 2:
            raise FommError(f"tracks {path} have fewer than 2 frames in {row['start']}..{row['end']}")
        pieces.append((row, tracks.select_frames(keep)))
    config = resolve_config([t for _, t in pieces], config)
    return [Clip(row["label"], motion_features(t, config), row["group"]) for row, t in pieces]


def check_clip_videos(rows: Sequence[dict], base_dir: str | os.PathLike) -> None:
    """Every row's frames must be in its video: checked for all rows before any frame is read."""
    lengths: dict[Path, int] = {}
    for row in rows:
        video = _resolve(Path(base_dir), row["video"])
        lengths.setdefault(video, probe(video).num_frames)
        if row["end"] >= lengths[video]:
            raise FommError(f"clip {row['video']} frames {row['start']}-{row['end']} ({row['label']}): "
                            f"{video} has only {lengths[video]} frames")


def pixel_clips(rows: Sequence[dict], base_dir: str | os.PathLike, config: FeatureConfig | None = None,
                grid: tuple[int, int] = (4, 4)) -> list[Clip]:
    """Pixel-baseline clips: motion energy of each row's frames (and crop box) of its video."""
    check_clip_videos(rows, base_dir)
    base = Path(base_dir)
    return [
        Clip(row["label"], pixel_features(_resolve(base, row["video"]), row["crop"], config, grid, row["start"], row["end"] + 1), row["group"])
        for row in rows
    ]
