"""How well behaviour is told apart from a few examples: episodes, leave-one-out, a pixel baseline.

The unit of evaluation is a labelled clip (:class:`Clip`): the windows of one example of one
behaviour. Few-shot protocol (:func:`run_episodes`): for each of many random draws, pick N
behaviours that have at least K + 1 clips, K of them per behaviour as the support set, the others
as queries; fit a classifier on the support windows; label each query clip by the class with the
highest mean window log-probability. Report mean ± sd of accuracy and macro-F1 over draws, and the
summed confusion matrix. :func:`leave_one_group_out` trains on every clip outside one group
(e.g. one video) and tests on that group.

The pixel baseline needs no keypoints: frame-difference motion energy (mean absolute grey-level
change) in a grid of cells over the same windows (:func:`motion_energy_features`), fed to the same
classifiers, so keypoint features are always compared with something that needs no detector.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from fomm_kp.behaviour.classifiers import ClassifierOptions, fit_window_classifier
from fomm_kp.errors import FommError
from fomm_kp.behaviour.features import FeatureConfig, Features, window_bounds, window_stats
from fomm_kp.files import atomic_write

__all__ = [
    "Clip",
    "EpisodeResult",
    "motion_energy",
    "motion_energy_features",
    "pixel_features",
    "run_episodes",
    "leave_one_group_out",
    "plot_confusion",
    "read_clip_table",
    "keypoint_clips",
    "pixel_clips",
    "evaluate_clip_set",
    "evaluate_behaviour",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Clip:
    """One labelled example: its window features, its label and the group it comes from."""

    label: str
    features: Features
    group: str = ""


@dataclass(frozen=True)
class EpisodeResult:
    """Summary of a few-shot evaluation.

    Attributes:
        accuracy_mean, accuracy_sd: clip accuracy over episodes.
        macro_f1_mean, macro_f1_sd: macro-F1 over the episode's classes, over episodes.
        window_accuracy_mean: accuracy of single windows (before clip averaging).
        episodes: number of draws; n_way, k_shot: the protocol.
        classes: all class names (rows/columns of ``confusion``).
        confusion: ``(C, C)`` counts summed over episodes, row = true class.
    """

    accuracy_mean: float
    accuracy_sd: float
    macro_f1_mean: float
    macro_f1_sd: float
    window_accuracy_mean: float
    episodes: int
    n_way: int
    k_shot: int
    classes: tuple[str, ...]
    confusion: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {
            "accuracy_mean": self.accuracy_mean,
            "accuracy_sd": self.accuracy_sd,
            "macro_f1_mean": self.macro_f1_mean,
            "macro_f1_sd": self.macro_f1_sd,
            "window_accuracy_mean": self.window_accuracy_mean,
            "episodes": self.episodes,
            "n_way": self.n_way,
            "k_shot": self.k_shot,
            "classes": list(self.classes),
            "confusion": self.confusion.tolist(),
        }


# --------------------------------------------------------------------------------------------
# Pixel baseline
# --------------------------------------------------------------------------------------------


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
    :func:`fomm_kp.features.motion_features` cuts them for tracks on the same frames).
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
    from fomm_kp.video import iter_frames, probe

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


# --------------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------------


def _fit_predict(train: Sequence[Clip], test: Sequence[Clip], kind: str, options: ClassifierOptions
                 ) -> tuple[list[str], list[np.ndarray], tuple[str, ...]]:
    """Fit on the windows of ``train``; return each test clip's predicted label and window probabilities."""
    names = train[0].features.names
    x = np.concatenate([c.features.values for c in train])
    y = [c.label for c in train for _ in range(c.features.num_windows)]
    clf = fit_window_classifier(x, y, names, kind, options, train[0].features.config)
    predicted, window_probs = [], []
    for clip in test:
        probs = clf.predict_proba_features(clip.features.columns(names))
        window_probs.append(probs)
        # the clip's label: highest mean log-probability over its windows (for the prototype
        # classifier this is the class nearest to the clip's mean feature vector)
        predicted.append(clf.classes[int(np.argmax(np.log(np.maximum(probs, 1e-300)).mean(axis=0)))])
    return predicted, window_probs, clf.classes


def _check_clips(clips: Sequence[Clip]) -> tuple[str, ...]:
    if not clips:
        raise FommError("no clips to evaluate")
    names = clips[0].features.names
    for c in clips:
        if c.features.names != names:
            raise FommError(f"clip '{c.label}' from '{c.group}' has different feature columns")
        if c.features.num_windows == 0:
            raise FommError(f"clip '{c.label}' from '{c.group}' has no windows")
    return tuple(sorted({c.label for c in clips}))


def run_episodes(
    clips: Sequence[Clip],
    k_shot: int,
    n_way: int | None = None,
    episodes: int = 200,
    kind: str = "prototype",
    seed: int = 0,
    max_queries: int | None = None,
    options: ClassifierOptions | None = None,
) -> EpisodeResult:
    """N-way K-shot episodes over labelled clips (see the module docstring).

    Args:
        clips: labelled examples; a behaviour takes part only with at least ``k_shot + 1`` clips.
        k_shot: support clips per behaviour.
        n_way: behaviours per episode (None = all eligible).
        episodes: random draws (same ``seed`` gives the same draws for any feature type, so two
            feature sets are compared on identical splits).
        kind: classifier kind (``prototype``, ``knn``, ``logistic``).
        max_queries: cap on query clips per behaviour (None = all the rest).
    """
    from sklearn.metrics import f1_score

    classes = _check_clips(clips)
    options = options or ClassifierOptions()
    by_class = {c: [i for i, clip in enumerate(clips) if clip.label == c] for c in classes}
    eligible = [c for c in classes if len(by_class[c]) >= k_shot + 1]
    n = len(eligible) if n_way is None else n_way
    if n < 2 or len(eligible) < n:
        raise FommError(
            f"{k_shot}-shot episodes need {max(n, 2)} behaviours with at least {k_shot + 1} clips; {len(eligible)} have that"
        )
    rng = np.random.default_rng(seed)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    accs, f1s, waccs = [], [], []
    for _ in range(episodes):
        chosen = sorted(rng.choice(eligible, size=n, replace=False).tolist())
        support, query = [], []
        for c in chosen:
            order = rng.permutation(by_class[c])
            support += [clips[i] for i in order[:k_shot]]
            rest = order[k_shot:] if max_queries is None else order[k_shot : k_shot + max_queries]
            query += [clips[i] for i in rest]
        predicted, window_probs, fitted = _fit_predict(support, query, kind, options)
        truth = [q.label for q in query]
        accs.append(float(np.mean([p == t for p, t in zip(predicted, truth)])))
        f1s.append(float(f1_score(truth, predicted, labels=chosen, average="macro", zero_division=0)))
        hits = [np.mean(np.asarray(fitted)[np.argmax(p, axis=1)] == t) for p, t in zip(window_probs, truth)]
        waccs.append(float(np.mean(hits)))
        for p, t in zip(predicted, truth):
            confusion[classes.index(t), classes.index(p)] += 1
    return EpisodeResult(
        accuracy_mean=float(np.mean(accs)),
        accuracy_sd=float(np.std(accs)),
        macro_f1_mean=float(np.mean(f1s)),
        macro_f1_sd=float(np.std(f1s)),
        window_accuracy_mean=float(np.mean(waccs)),
        episodes=episodes,
        n_way=n,
        k_shot=k_shot,
        classes=classes,
        confusion=confusion,
    )


def leave_one_group_out(clips: Sequence[Clip], kind: str = "prototype", options: ClassifierOptions | None = None) -> dict:
    """Train on all clips outside a group, test on the group's clips, for every group.

    Returns ``{"accuracy", "macro_f1", "per_group": {group: accuracy}, "classes", "confusion"}``;
    a group whose removal leaves some of its behaviours without training clips is still tested
    (those clips cannot be right), which is what leave-one-video-out means with few videos.
    """
    from sklearn.metrics import f1_score

    classes = _check_clips(clips)
    groups = sorted({c.group for c in clips})
    if len(groups) < 2:
        raise FommError(f"leave-one-group-out needs at least 2 groups, got {groups}")
    options = options or ClassifierOptions()
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    truth_all, pred_all, per_group = [], [], {}
    for g in groups:
        train = [c for c in clips if c.group != g]
        test = [c for c in clips if c.group == g]
        if len({c.label for c in train}) < 2:
            raise FommError(f"leaving out '{g}' leaves fewer than 2 behaviours to train on")
        predicted, _, _ = _fit_predict(train, test, kind, options)
        truth = [c.label for c in test]
        per_group[g] = float(np.mean([p == t for p, t in zip(predicted, truth)]))
        truth_all += truth
        pred_all += predicted
        for p, t in zip(predicted, truth):
            confusion[classes.index(t), classes.index(p)] += 1
    return {
        "accuracy": float(np.mean([p == t for p, t in zip(pred_all, truth_all)])),
        "macro_f1": float(f1_score(truth_all, pred_all, labels=list(classes), average="macro", zero_division=0)),
        "per_group": per_group,
        "classes": list(classes),
        "confusion": confusion.tolist(),
    }


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: str | os.PathLike, title: str = "") -> Path:
    """PNG of a row-normalised confusion matrix (row = true class) with the counts written in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion, dtype=np.float64)
    n = len(classes)
    if confusion.shape != (n, n):
        raise FommError(f"confusion matrix {confusion.shape} does not match {n} classes")
    rows = confusion.sum(axis=1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels=classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if confusion[i, j]:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), suffix=".png")
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# A labelled-clip table on disk → clips → report
# --------------------------------------------------------------------------------------------


def read_clip_table(path: str | os.PathLike) -> list[dict]:
    """Read clips: ``video,start_frame,end_frame,label`` (end inclusive), optional ``tracks``
    (a tracks file per clip), ``group`` (for leave-one-group-out; default the video) and a crop box
    ``x0,y0,x1,y1`` (for the pixel baseline, e.g. one tile of a tiled video)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FommError(f"clip table not found: {path}")
    df = pd.read_csv(path, keep_default_na=False, dtype=str)
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
    from fomm_kp.behaviour.features import motion_features, resolve_config
    from fomm_kp.tracks import load_tracks

    base = Path(base_dir)
    cache: dict[Path, object] = {}
    pieces = []
    for row in rows:
        if row["tracks"]:
            path = _resolve(base, row["tracks"])
        elif tracks_dir is not None:
            stem = Path(row["video"]).stem
            found = sorted(p for p in Path(tracks_dir).glob(f"{stem}.*") if p.suffix.lower() in (".npz", ".csv", ".h5", ".slp", ".nwb"))
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


def pixel_clips(rows: Sequence[dict], base_dir: str | os.PathLike, config: FeatureConfig | None = None,
                grid: tuple[int, int] = (4, 4)) -> list[Clip]:
    """Pixel-baseline clips: motion energy of each row's frames (and crop box) of its video."""
    base = Path(base_dir)
    return [
        Clip(row["label"], pixel_features(_resolve(base, row["video"]), row["crop"], config, grid, row["start"], row["end"] + 1), row["group"])
        for row in rows
    ]


def evaluate_clip_set(
    clips: list[Clip], shots: Sequence[int], kinds: Sequence[str], episodes: int, seed: int,
    out_dir: str | os.PathLike, name: str, group_name: str = "group", title_prefix: str = "",
) -> dict:
    """K-shot episodes per classifier kind and shot count, plus leave-one-group-out, for one feature set.

    Writes a confusion PNG per kind and shot count into ``out_dir``; returns
    ``{"<kind>/<k>-shot": {...}, "<kind>/leave-one-<group_name>-out": {...}}``. A shot count (or a
    leave-one-out) that the clips do not allow is recorded as skipped.
    """
    out = Path(out_dir)
    res: dict = {}
    for kind in kinds:
        for k in shots:
            key = f"{kind}/{k}-shot"
            try:
                r = run_episodes(clips, k_shot=k, episodes=episodes, kind=kind, seed=seed)
            except FommError as exc:
                res[key] = {"skipped": str(exc)}
                continue
            res[key] = r.to_dict()
            plot_confusion(r.confusion, r.classes, out / f"confusion_{name}_{kind}_{k}shot.png",
                           title=f"{title_prefix}{r.n_way}-way {k}-shot, {name} features, {kind} ({episodes} episodes)")
        if len({c.group for c in clips}) >= 2:
            key = f"{kind}/leave-one-{group_name}-out"
            try:
                res[key] = leave_one_group_out(clips, kind=kind)
            except FommError as exc:
                res[key] = {"skipped": str(exc)}
    return res


def evaluate_behaviour(
    table: str | os.PathLike,
    out_dir: str | os.PathLike,
    tracks_dir: str | os.PathLike | None = None,
    pixel: bool = True,
    keypoints: bool = True,
    shots: Sequence[int] = (1, 2, 4),
    episodes: int = 200,
    kinds: Sequence[str] = ("prototype",),
    seed: int = 0,
    config: FeatureConfig | None = None,
) -> dict:
    """Episodes (and leave-one-group-out) for keypoint features and the pixel baseline on a clip table.

    Writes ``results.json`` and a confusion PNG per feature set, classifier and shot count into
    ``out_dir``; returns the results (``{feature_set: {"<kind>/<k>-shot": {...}, ...}}``). A shot
    count that too few behaviours allow is recorded as skipped.
    """
    import json

    table = Path(table)
    rows = read_clip_table(table)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = config or FeatureConfig()
    sets: dict[str, list[Clip]] = {}
    if keypoints:
        sets["keypoints"] = keypoint_clips(rows, table.parent, tracks_dir, config)
    if pixel:
        sets["pixel"] = pixel_clips(rows, table.parent, config)
    if not sets:
        raise FommError("nothing to evaluate: keypoints and pixel baseline are both off")
    results: dict = {"table": str(table), "clips": len(rows), "feature_config": config.to_dict()}
    for name, clips in sets.items():
        results[name] = evaluate_clip_set(clips, shots, kinds, episodes, seed, out, name)
    atomic_write(out / "results.json", lambda tmp: tmp.write_text(json.dumps(results, indent=2)))
    return results
