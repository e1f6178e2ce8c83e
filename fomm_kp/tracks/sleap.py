"""Tracks as SLEAP ``.slp`` (through sleap-io, the ``interop`` extra): read and written.

What survives a round trip: keypoints, scores, frame indices, keypoint and subject (track) names, fps
(kept in the file's provenance). Jacobians and covariances are not part of SLEAP's model and are dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.optional import require
from fomm_kp.tracks.core import Tracks, resolve_fps

__all__ = ["load_sleap", "save_sleap"]


def _tracks_from_labels(labels: Any, path: Path, fps: float | None, video_index: int) -> Tracks:
    if not labels.videos:
        raise FommError(f"{path} holds no videos")
    if not 0 <= video_index < len(labels.videos):
        raise FommError(f"{path} holds {len(labels.videos)} videos; video index {video_index} is out of range")
    if not labels.skeletons:
        raise FommError(f"{path} holds no skeleton")
    video = labels.videos[video_index]
    frames = sorted({int(lf.frame_idx) for lf in labels.labeled_frames if lf.video is video})
    if not frames:
        raise FommError(f"{path} has no labelled frames for video {video_index}")
    tracked = len(labels.tracks) > 0
    data = labels.numpy(video=video, untracked=not tracked, return_confidence=True, user_instances=True)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 4 or data.shape[-1] != 3:
        raise FommError(f"unexpected array shape {data.shape} from {path}")
    data = data[np.asarray(frames)]
    kp = data[..., :2].copy()
    missing = np.isnan(kp).any(axis=-1)
    kp[missing] = np.nan
    scores = np.where(missing, 0.0, np.nan_to_num(data[..., 2], nan=1.0))
    scores = np.clip(scores, 0.0, 1.0).astype(np.float32)
    subjects = tuple(t.name or f"track{i}" for i, t in enumerate(labels.tracks)) if tracked else tuple(
        f"subject{i}" for i in range(kp.shape[1])
    )
    stored_fps = None
    provenance = getattr(labels, "provenance", None) or {}
    if "fps" in provenance:
        stored_fps = float(provenance["fps"])
    filename = video.filename if isinstance(video.filename, str) else ""
    return Tracks(
        keypoints=kp,
        scores=scores,
        frame_indices=np.asarray(frames, dtype=np.int64),
        fps=resolve_fps(fps, path, stored_fps),
        video=str(provenance.get("fomm_kp_video", filename)),
        keypoint_names=tuple(labels.skeletons[0].node_names),
        subject_names=subjects,
    )


def load_sleap(path: str | os.PathLike, fps: float | None = None, video_index: int = 0) -> Tracks:
    """Read a SLEAP ``.slp`` as Tracks.

    Subjects are SLEAP tracks when the file has any, else instance slots in each frame. Rows are
    the frames that hold labels; user-labelled instances win over predictions of the same frame.
    Scores above 1 (SLEAP peak values can exceed 1) are clipped to 1.
    """
    path = Path(path)
    sio = require("sleap_io", "reading SLEAP files")
    try:
        labels = sio.load_slp(str(path), open_videos=False)
    except (OSError, KeyError, ValueError) as exc:
        raise FommError(f"cannot read {path}: {exc.__class__.__name__}: {exc}") from exc
    return _tracks_from_labels(labels, path, fps, video_index)


def _labels_from_tracks(tracks: Tracks) -> Any:
    sio = require("sleap_io", "writing SLEAP files")
    skeleton = sio.Skeleton(nodes=[sio.Node(name) for name in tracks.keypoint_names], name="fomm_kp")
    video = sio.Video(filename=tracks.video or "unknown.mp4", open_backend=False)
    sleap_tracks = [sio.Track(name=name) for name in tracks.subject_names]
    frames = []
    for t in range(tracks.num_frames):
        instances = []
        for n in range(tracks.num_subjects):
            points = tracks.keypoints[t, n].astype(np.float64)
            if np.isnan(points).all():
                continue
            point_scores = np.where(np.isnan(points).any(axis=-1), 0.0, tracks.scores[t, n])
            instances.append(
                sio.PredictedInstance.from_numpy(
                    points,
                    skeleton=skeleton,
                    point_scores=point_scores.astype(np.float64),
                    score=float(np.nanmean(point_scores)),
                    track=sleap_tracks[n],
                )
            )
        if instances:
            frames.append(sio.LabeledFrame(video=video, frame_idx=int(tracks.frame_indices[t]), instances=instances))
    if not frames:
        raise FommError("nothing to write: every keypoint of every frame is missing")
    return sio.Labels(
        labeled_frames=frames,
        videos=[video],
        skeletons=[skeleton],
        tracks=sleap_tracks,
        provenance={"fps": float(tracks.fps), "fomm_kp_video": tracks.video, "software": "fomm_kp"},
    )


def save_sleap(tracks: Tracks, path: str | os.PathLike) -> Path:
    """Write Tracks as a SLEAP ``.slp`` of predicted instances (one SLEAP track per subject)."""
    sio = require("sleap_io", "writing SLEAP files")
    labels = _labels_from_tracks(tracks)
    return atomic_write(path, lambda tmp: sio.save_slp(labels, str(tmp), verbose=False), suffix=".slp")
