"""Tracks as ``.npz``: a lossless round trip of every field, arrays and text only (no pickles)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.tracks.core import Tracks

__all__ = ["save_npz", "load_npz"]


def _write_npz(tracks: Tracks, path: Path) -> None:
    arrays = {
        "keypoints": tracks.keypoints,
        "scores": tracks.scores,
        "frame_indices": tracks.frame_indices,
        "fps": np.float64(tracks.fps),
        "video": np.str_(tracks.video),
        "keypoint_names": np.array(tracks.keypoint_names, dtype=np.str_),
        "subject_names": np.array(tracks.subject_names, dtype=np.str_),
        "metadata": np.str_(json.dumps(tracks.metadata)),
    }
    if tracks.jacobians is not None:
        arrays["jacobians"] = tracks.jacobians
    if tracks.covariances is not None:
        arrays["covariances"] = tracks.covariances
    if tracks.identities is not None:
        arrays["identities"] = tracks.identities
    if tracks.times is not None:
        arrays["times"] = tracks.times
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def _metadata(data: np.lib.npyio.NpzFile) -> dict:
    """The ``metadata`` JSON text of a tracks file (absent in files of older versions: empty)."""
    if "metadata" not in data:
        return {}
    value = json.loads(str(data["metadata"]))
    if not isinstance(value, dict):
        raise ValueError("its metadata is not a JSON object")
    return value


def load_npz(path: str | os.PathLike) -> Tracks:
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
                metadata=_metadata(data),
                identities=data["identities"] if "identities" in data else None,
                times=data["times"] if "times" in data else None,
            )
    except (KeyError, ValueError, OSError, EOFError, TypeError) as exc:
        raise FommError(f"{path} is not a fomm_kp tracks file: {exc}") from exc


def save_npz(tracks: Tracks, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda tmp: _write_npz(tracks, tmp))
