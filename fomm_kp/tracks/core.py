"""The ``Tracks`` type every downstream part consumes, and its file formats.

Coordinates are pixels of the ORIGINAL video frame: origin at the top-left pixel, x right, y down;
NaN where a keypoint is missing. Shapes: T frames, N subjects, K keypoints.

Formats: ``.npz`` (lossless round trip, no pickles) and DeepLabCut-style CSV with likelihood.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write

__all__ = ["Tracks", "load_tracks", "save_tracks"]


@dataclass(frozen=True, eq=False)
class Tracks:
    """Keypoint tracks of N subjects with K keypoints over T frames.

    Attributes:
        keypoints: float32 ``(T, N, K, 2)``, x, y in original-frame pixels; NaN where missing.
        scores: float32 ``(T, N, K)`` confidences in [0, 1].
        jacobians: float32 ``(T, N, K, 2, 2)`` local affine per keypoint (pixel units), or None.
        covariances: float32 ``(T, N, K, 2, 2)`` spatial covariance in pixels², or None.
        frame_indices: int64 ``(T,)`` 0-based frame index of each row in ``video``.
        fps: frames per second of the source video.
        video: path of the source video ("" when unknown).
        keypoint_names: K names.
        subject_names: N names.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    frame_indices: np.ndarray
    fps: float
    jacobians: np.ndarray | None = None
    covariances: np.ndarray | None = None
    video: str = ""
    keypoint_names: tuple[str, ...] = field(default=())
    subject_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.ndim != 4 or kp.shape[-1] != 2:
            raise FommError(f"Tracks.keypoints must have shape (T, N, K, 2), got {kp.shape}")
        t, n, k, _ = kp.shape
        scores = np.asarray(self.scores, dtype=np.float32)
        if scores.shape != (t, n, k):
            raise FommError(f"Tracks.scores must have shape {(t, n, k)}, got {scores.shape}")
        frames = np.asarray(self.frame_indices, dtype=np.int64)
        if frames.shape != (t,):
            raise FommError(f"Tracks.frame_indices must have shape ({t},), got {frames.shape}")
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "frame_indices", frames)
        for name in ("jacobians", "covariances"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float32)
                if value.shape != (t, n, k, 2, 2):
                    raise FommError(f"Tracks.{name} must have shape {(t, n, k, 2, 2)}, got {value.shape}")
                object.__setattr__(self, name, value)
        names = tuple(self.keypoint_names) or tuple(f"kp{i}" for i in range(k))
        subjects = tuple(self.subject_names) or tuple(f"subject{i}" for i in range(n))
        if len(names) != k:
            raise FommError(f"Tracks has {k} keypoints but {len(names)} keypoint names")
        if len(subjects) != n:
            raise FommError(f"Tracks has {n} subjects but {len(subjects)} subject names")
        object.__setattr__(self, "keypoint_names", names)
        object.__setattr__(self, "subject_names", subjects)
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "video", str(self.video))

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def num_subjects(self) -> int:
        return int(self.keypoints.shape[1])

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[2])

    def __len__(self) -> int:
        return self.num_frames

    def select_frames(self, index: slice | np.ndarray | Sequence[int]) -> "Tracks":
        """A new Tracks holding only the given rows (a slice, boolean mask or index array)."""
        return Tracks(
            keypoints=self.keypoints[index],
            scores=self.scores[index],
            frame_indices=self.frame_indices[index],
            fps=self.fps,
            jacobians=None if self.jacobians is None else self.jacobians[index],
            covariances=None if self.covariances is None else self.covariances[index],
            video=self.video,
            keypoint_names=self.keypoint_names,
            subject_names=self.subject_names,
        )


def _save_npz(tracks: Tracks, path: Path) -> None:
    arrays = {
        "keypoints": tracks.keypoints,
        "scores": tracks.scores,
        "frame_indices": tracks.frame_indices,
        "fps": np.float64(tracks.fps),
        "video": np.str_(tracks.video),
        "keypoint_names": np.array(tracks.keypoint_names, dtype=np.str_),
        "subject_names": np.array(tracks.subject_names, dtype=np.str_),
    }
    if tracks.jacobians is not None:
        arrays["jacobians"] = tracks.jacobians
    if tracks.covariances is not None:
        arrays["covariances"] = tracks.covariances
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def _load_npz(path: Path) -> Tracks:
    try:
        with np.load(path, allow_pickle=False) as data:
            return Tracks(
                keypoints=data["keypoints"],
                scores=data["scores"],
                frame_indices=data["frame_indices"],
                fps=float(data["fps"]),
                jacobians=data["jacobians"] if "jacobians" in data else None,
                covariances=data["covariances"] if "covariances" in data else None,
                video=str(data["video"]),
                keypoint_names=tuple(str(s) for s in data["keypoint_names"]),
                subject_names=tuple(str(s) for s in data["subject_names"]),
            )
    except (KeyError, ValueError, OSError) as exc:
        raise FommError(f"{path} is not a fomm_kp tracks file: {exc}") from exc


def _save_dlc_csv(tracks: Tracks, path: Path, scorer: str = "fomm_kp") -> None:
    """DeepLabCut layout: header rows scorer/(individuals)/bodyparts/coords, one row per frame."""
    multi = tracks.num_subjects > 1
    columns = [(s, kp, c) for s in tracks.subject_names for kp in tracks.keypoint_names for c in ("x", "y", "likelihood")]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["scorer"] + [scorer] * len(columns))
        if multi:
            writer.writerow(["individuals"] + [c[0] for c in columns])
        writer.writerow(["bodyparts"] + [c[1] for c in columns])
        writer.writerow(["coords"] + [c[2] for c in columns])
        for t in range(tracks.num_frames):
            row: list[str] = [str(int(tracks.frame_indices[t]))]
            for n in range(tracks.num_subjects):
                for k in range(tracks.num_keypoints):
                    x, y = tracks.keypoints[t, n, k]
                    s = tracks.scores[t, n, k]
                    row += ["" if np.isnan(x) else f"{x:.3f}", "" if np.isnan(y) else f"{y:.3f}", f"{s:.4f}"]
            writer.writerow(row)


def save_tracks(tracks: Tracks, path: str | os.PathLike) -> Path:
    """Write tracks by extension: ``.npz`` (lossless) or ``.csv`` (DeepLabCut layout with likelihood).

    ``.slp`` and ``.nwb`` are handled by :mod:`fomm_kp.interop` when sleap-io is installed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return atomic_write(path, lambda tmp: _save_npz(tracks, tmp))
    if suffix == ".csv":
        return atomic_write(path, lambda tmp: _save_dlc_csv(tracks, tmp))
    if suffix in (".slp", ".nwb"):
        from fomm_kp.tracks import formats as interop

        return interop.save(tracks, path)
    raise FommError(f"cannot write tracks as '{suffix}' ({path}): use .npz, .csv, .slp or .nwb")


def load_tracks(path: str | os.PathLike) -> Tracks:
    """Read tracks by extension: our ``.npz``; DeepLabCut ``.csv``/``.h5`` and SLEAP ``.slp`` via interop."""
    path = Path(path)
    if not path.is_file():
        raise FommError(f"tracks file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path)
    if suffix in (".csv", ".h5", ".slp", ".nwb"):
        from fomm_kp.tracks import formats as interop

        return interop.load(path)
    raise FommError(f"cannot read tracks from '{suffix}' ({path}): use .npz, DeepLabCut .csv/.h5 or SLEAP .slp")
