"""Unsupervised motifs: cluster feature windows when nobody has labelled anything yet.

Windows of one or many videos are signed-log transformed and standardised, reduced with PCA, and clustered with k-means (the
number of clusters chosen by the silhouette score) or a Gaussian mixture (chosen by BIC). For each
motif the windows nearest its centre are written as short example clips, so a user can watch and
name them; :meth:`Motifs.to_classifier` turns the motifs into a nearest-prototype classifier whose
class names (``motif00``...) can be renamed and used with ``fomm-kp classify``.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.mixture import GaussianMixture

from fomm_kp.behaviour.classifiers import CLIP, Classifier, feature_standardisation, save_classifier, signed_log
from fomm_kp.behaviour.features import Features
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write, rebased, staged_folder
from fomm_kp.video import VideoWriter, iter_frames, resize_frame

__all__ = ["Motifs", "find_motifs", "write_motif_examples"]

log = logging.getLogger(__name__)

METHODS = ("kmeans", "gmm")


@dataclass(frozen=True, eq=False)
class Motifs:
    """Clusters of feature windows.

    Attributes:
        labels: int64 ``(W,)`` motif of each window, windows of all inputs in order.
        distances: float ``(W,)`` distance of each window to its motif centre (PCA space).
        source: int64 ``(W,)`` index of the input Features each window came from.
        k: number of motifs; method: ``kmeans`` or ``gmm``.
        criterion: ``{k: score}`` (silhouette, higher is better; or BIC, lower is better).
        prototypes: ``(k, F)`` mean standardised features of each motif.
        spread: mean squared standardised distance of windows to their motif's prototype.
        mean, scale: ``(F,)`` standardisation; feature_names: F names; feature_config: as data.
    """

    labels: np.ndarray
    distances: np.ndarray
    source: np.ndarray
    k: int
    method: str
    criterion: dict[int, float]
    prototypes: np.ndarray
    spread: float
    mean: np.ndarray
    scale: np.ndarray
    feature_names: tuple[str, ...]
    feature_config: dict = field(default_factory=dict)

    def to_classifier(self, names: Sequence[str] | None = None) -> Classifier:
        """A nearest-prototype classifier with one class per motif (default names ``motif00``...)."""
        names = list(names) if names is not None else [f"motif{i:02d}" for i in range(self.k)]
        if len(names) != self.k or len(set(names)) != self.k:
            raise FommError(f"need {self.k} distinct motif names, got {names}")
        return Classifier("prototype", tuple(names), self.feature_names, self.mean, self.scale,
                          {"prototypes": self.prototypes}, {"spread": self.spread, "signed_log": True}, self.feature_config)


def _cluster(y: np.ndarray, k_range: tuple[int, int], method: str, seed: int) -> tuple[int, dict[int, float], np.ndarray, np.ndarray]:
    """Cluster the PCA-reduced windows ``y`` for every k in ``k_range``; the best k by the method's
    criterion, the criteria, and the best clustering's labels and centres."""
    criterion: dict[int, float] = {}
    models = {}
    sample = np.random.default_rng(seed).choice(len(y), size=min(len(y), 3000), replace=False)
    for k in range(k_range[0], k_range[1] + 1):
        if method == "kmeans":
            model = KMeans(n_clusters=k, n_init=5, random_state=seed).fit(y)
            labels = model.labels_
            criterion[k] = float(silhouette_score(y[sample], labels[sample])) if len(set(labels[sample])) > 1 else -1.0
        else:
            model = GaussianMixture(n_components=k, covariance_type="diag", random_state=seed, n_init=2).fit(y)
            criterion[k] = float(model.bic(y))
        models[k] = model
    best = max(criterion, key=criterion.get) if method == "kmeans" else min(criterion, key=criterion.get)
    model = models[best]
    if method == "kmeans":
        return best, criterion, model.labels_.astype(np.int64), model.cluster_centers_
    return best, criterion, model.predict(y).astype(np.int64), model.means_


def find_motifs(
    features: Features | Sequence[Features],
    k_range: tuple[int, int] = (2, 10),
    method: str = "kmeans",
    max_dims: int = 20,
    seed: int = 0,
) -> Motifs:
    """Cluster the windows of one or more Features tables.

    Args:
        features: Features with identical columns.
        k_range: smallest and largest number of motifs to try (inclusive).
        method: ``kmeans`` (k by silhouette score) or ``gmm`` (k by BIC).
        max_dims: PCA dimensions kept before clustering.
    """
    if method not in METHODS:
        raise FommError(f"unknown motif method '{method}': use one of {', '.join(METHODS)}")
    parts = [features] if isinstance(features, Features) else list(features)
    if not parts:
        raise FommError("no features to cluster")
    names = parts[0].names
    if any(p.names != names for p in parts):
        raise FommError("features to cluster must have identical columns")
    x = np.concatenate([p.values for p in parts]).astype(np.float64)
    source = np.concatenate([np.full(p.num_windows, i) for i, p in enumerate(parts)])
    k_lo, k_hi = k_range
    if k_lo < 2 or k_hi < k_lo:
        raise FommError(f"k_range must satisfy 2 <= k_min <= k_max, got {k_range}")
    if len(x) < k_hi + 1:
        raise FommError(f"{len(x)} windows are too few for up to {k_hi} motifs")
    x = signed_log(x)  # as the classifiers do: heavy-tailed speeds and powers would dominate otherwise
    mean, scale = feature_standardisation(x)
    z = np.clip(np.nan_to_num((x - mean) / scale, nan=0.0), -CLIP, CLIP)
    dims = int(min(max_dims, z.shape[1], len(z) - 1))
    pca = PCA(n_components=dims, random_state=seed)
    y = pca.fit_transform(z)
    log.info("clustering %d windows in %d PCA dims (%.0f%% of the variance)", len(y), dims, 100 * pca.explained_variance_ratio_.sum())
    best, criterion, labels, centres = _cluster(y, k_range, method, seed)
    distances = np.linalg.norm(y - centres[labels], axis=1)
    prototypes = np.stack([z[labels == c].mean(axis=0) if np.any(labels == c) else np.zeros(z.shape[1]) for c in range(best)])
    spread = float(((z - prototypes[labels]) ** 2).mean()) or 1.0
    log.info("chose %d motifs (%s): %s", best, method, {k: round(v, 3) for k, v in criterion.items()})
    return Motifs(labels, distances, source, best, method, criterion, prototypes, spread, mean, scale, names, parts[0].config)


def _examples(motifs: Motifs, parts: list[Features], offsets: np.ndarray, motif: int, per_motif: int,
              ) -> list[tuple[int, int, int]]:
    """``(part, start, end)`` of the windows nearest the motif's centre that do not overlap each other."""
    members = np.nonzero(motifs.labels == motif)[0]
    members = members[np.argsort(motifs.distances[members])]
    chosen: list[tuple[int, int, int]] = []
    for g in members:
        i = int(np.searchsorted(offsets, g, side="right") - 1)
        j = g - offsets[i]
        s, e = int(parts[i].start_frames[j]), int(parts[i].end_frames[j])
        if any(ci == i and s < ce and cs < e for ci, cs, ce in chosen):
            continue
        chosen.append((i, s, e))
        if len(chosen) == per_motif:
            break
    return chosen


def _write_clip(path: Path, name: str, chosen: list[tuple[int, int, int]], videos: Sequence, fps: float) -> Path:
    """The chosen windows one after another, each frame labelled ``name``, a short black gap after each."""
    with VideoWriter(path, fps=fps) as writer:
        shape = None
        for i, s, e in chosen:
            video = videos[i]
            if not video or not Path(video).exists():
                raise FommError(f"video '{video}' for motif examples not found: pass the videos, or skip the clips")
            for _, frame in iter_frames(video, start=s, stop=e):
                frame = _label_frame(frame, name)
                shape = shape or frame.shape
                if frame.shape != shape:
                    frame = resize_frame(frame, (shape[1], shape[0]))
                writer.write(frame)
            for _ in range(int(round(fps / 3))):
                writer.write(np.zeros(shape, dtype=np.uint8))
    return path


def _write_table(path: Path, motifs: Motifs, parts: list[Features], offsets: np.ndarray) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["video", "start_frame", "end_frame", "motif", "distance"])
            for i, p in enumerate(parts):
                for j in range(p.num_windows):
                    g = offsets[i] + j
                    w.writerow([p.video, int(p.start_frames[j]), int(p.end_frames[j]) - 1, f"motif{motifs.labels[g]:02d}",
                                f"{motifs.distances[g]:.4f}"])

    return atomic_write(path, write)


def write_motif_examples(
    motifs: Motifs,
    features: Features | Sequence[Features],
    out_dir: str | os.PathLike,
    per_motif: int = 3,
    videos: Sequence[str | os.PathLike | None] | None = None,
    write_clips: bool = True,
) -> dict[str, Path]:
    """Write ``motifs.csv`` (every window's motif), the motifs as a classifier
    (``motifs_classifier.npz``) and per motif an example clip ``motif_XX.mp4``, all at once (written
    beside ``out_dir`` and moved in at the end, so a failure leaves nothing).

    The examples are the ``per_motif`` windows nearest the motif centre that do not overlap each
    other, shown one after another with a short black gap and the motif name. ``videos`` gives
    the video of each Features (default: their ``video`` fields). Returns the written paths by
    role: ``motifs_csv``, ``classifier`` and ``motif:XX``.
    """
    parts = [features] if isinstance(features, Features) else list(features)
    if len(motifs.labels) != sum(p.num_windows for p in parts):
        raise FommError("motifs and features disagree on the number of windows")
    offsets = np.cumsum([0] + [p.num_windows for p in parts])
    video_paths = list(videos) if videos is not None else [p.video for p in parts]
    if len(video_paths) != len(parts):
        raise FommError(f"{len(video_paths)} videos given for {len(parts)} feature tables")
    with staged_folder(out_dir) as out:
        written = {"motifs_csv": _write_table(out / "motifs.csv", motifs, parts, offsets),
                   "classifier": save_classifier(motifs.to_classifier(), out / "motifs_classifier.npz")}
        if write_clips:
            for m in range(motifs.k):
                chosen = _examples(motifs, parts, offsets, m, per_motif)
                fps = parts[chosen[0][0]].fps if chosen else 30.0
                written[f"motif:{m:02d}"] = _write_clip(out / f"motif_{m:02d}.mp4", f"motif{m:02d}", chosen, video_paths,
                                                        fps)
    return rebased(written, out, Path(out_dir))


def _label_frame(frame: np.ndarray, text: str) -> np.ndarray:
    """Draw ``text`` in the top-left corner (white on a dark box)."""
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 8 + 7 * len(text), 18], fill=(0, 0, 0))
    draw.text((4, 3), text, fill=(255, 255, 255))
    return np.asarray(image)
