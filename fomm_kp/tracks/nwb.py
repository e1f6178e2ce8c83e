"""Tracks as NWB (ndx-pose, which comes with sleap-io in the ``interop`` extra): read and written.

What survives a round trip: keypoints, scores, frame indices, fps, keypoint and subject names.
Written with pynwb + ndx-pose directly rather than through sleap-io's writer, which rounds
non-integer frame rates down. Every series carries explicit timestamps ``frame_indices / fps``; the
frame rate is kept in each container's description.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.optional import require
from fomm_kp.tracks.core import Tracks, resolve_fps

__all__ = ["load_nwb", "save_nwb"]

log = logging.getLogger(__name__)

REFERENCE_FRAME = "(0, 0) is the top-left pixel of the original video frame; x right, y down"
NodeData = tuple[np.ndarray, np.ndarray, np.ndarray]  # timestamps (T,), positions (T, 2), confidences (T,)


def _subject_series(ndx_pose: Any, tracks: Tracks, n: int, present: np.ndarray) -> list[Any]:
    """One ``PoseEstimationSeries`` per keypoint of subject ``n``, over the frames where it is present."""
    timestamps = tracks.frame_indices.astype(np.float64) / tracks.fps
    return [
        ndx_pose.PoseEstimationSeries(
            name=node, description=f"position of {node}", data=tracks.keypoints[present, n, k].astype(np.float64),
            unit="pixels", reference_frame=REFERENCE_FRAME, timestamps=timestamps[present],
            confidence=tracks.scores[present, n, k].astype(np.float64),
            confidence_definition="fomm_kp keypoint confidence in [0, 1]",
        )
        for k, node in enumerate(tracks.keypoint_names)
    ]


def save_nwb(tracks: Tracks, path: str | os.PathLike) -> Path:
    """Write Tracks as NWB: an ndx-pose ``PoseEstimation`` per subject in a ``behavior`` module."""
    pynwb = require("pynwb", "writing NWB files")
    ndx_pose = require("ndx_pose", "writing NWB files")
    nwbfile = pynwb.NWBFile(
        session_description=f"fomm_kp keypoint tracks of {tracks.video or 'an unknown video'}",
        identifier=str(uuid.uuid4()), session_start_time=datetime.datetime.now(datetime.timezone.utc),
    )
    device = nwbfile.create_device(name="camera", description="video camera")
    skeleton = ndx_pose.Skeleton(name="skeleton", nodes=list(tracks.keypoint_names), edges=np.zeros((0, 2), dtype="uint8"))
    module = nwbfile.create_processing_module(name="behavior", description="keypoint tracks from fomm_kp")
    module.add(ndx_pose.Skeletons(skeletons=[skeleton]))
    meta = json.dumps({"software": "fomm_kp", "fps": float(tracks.fps), "video": tracks.video})
    written = 0
    for n, subject in enumerate(tracks.subject_names):
        present = ~np.isnan(tracks.keypoints[:, n]).all(axis=(1, 2))
        if not present.any():
            continue
        module.add(ndx_pose.PoseEstimation(
            name=f"subject={subject}", pose_estimation_series=_subject_series(ndx_pose, tracks, n, present),
            description=meta, skeleton=skeleton, device=device, source_software="fomm_kp"))
        written += 1
    if written == 0:
        raise FommError("nothing to write: every keypoint of every frame is missing")

    def write(tmp: Path) -> None:
        with pynwb.NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwbfile)

    return atomic_write(path, write, suffix=".nwb")


def _fomm_meta(description: str | None) -> dict:
    """Our JSON metadata from a PoseEstimation description; {} for free text written by other tools."""
    text = (description or "").strip()
    if not text.startswith("{"):
        return {}
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return meta if isinstance(meta, dict) and meta.get("software") == "fomm_kp" else {}


def _node_data(series: Any) -> NodeData:
    data = np.asarray(series.data[:], dtype=np.float64)
    if series.timestamps is not None:
        times = np.asarray(series.timestamps[:], dtype=np.float64)
    else:
        times = float(series.starting_time or 0.0) + np.arange(len(data)) / float(series.rate)
    conf = np.asarray(series.confidence[:], dtype=np.float64) if series.confidence is not None else np.ones(len(data))
    return times, data[:, :2], conf


def _read_containers(path: Path) -> tuple[list[str], dict[str, Any], list[tuple[str, dict[str, NodeData]]]]:
    """Keypoint names, fomm_kp metadata, and per subject (container) the data of each keypoint."""
    pynwb = require("pynwb", "reading NWB files")
    ndx_pose = require("ndx_pose", "reading NWB files")
    try:
        io = pynwb.NWBHDF5IO(str(path), "r")
    except (OSError, ValueError) as exc:
        raise FommError(f"cannot read NWB file {path}: {exc}") from exc
    with io:
        nwbfile = io.read()
        containers = [c for module in nwbfile.processing.values() for c in module.data_interfaces.values()
                      if isinstance(c, ndx_pose.PoseEstimation)]
        if not containers:
            raise FommError(f"{path} holds no ndx-pose PoseEstimation")
        names = list(containers[0].pose_estimation_series.keys())
        if containers[0].skeleton is not None:
            nodes = [str(x) for x in containers[0].skeleton.nodes[:]]
            names = [n for n in nodes if n in names] + [n for n in names if n not in nodes]
        subjects = [(c.name.removeprefix("subject=").removeprefix("track="),
                     {node: _node_data(c.pose_estimation_series[node]) for node in names
                      if c.pose_estimation_series.get(node) is not None})
                    for c in containers]
        return names, _fomm_meta(containers[0].description), subjects


def _frame_rate(path: Path, fps: float | None, meta: dict[str, Any], times: np.ndarray) -> float:
    stored = float(meta["fps"]) if "fps" in meta else None
    if fps is None and stored is None:
        steps = np.diff(times)
        steps = steps[steps > 0]
        if steps.size == 0:
            raise FommError(f"cannot infer a frame rate from {path}: pass fps=")
        stored = float(1.0 / steps.min())
        log.info("%s: frame rate inferred from timestamps as %.3f fps", path, stored)
    return resolve_fps(fps, path, stored)


def load_nwb(path: str | os.PathLike, fps: float | None = None) -> Tracks:
    """Read every ndx-pose ``PoseEstimation`` of an NWB file as one subject each.

    Frame indices are ``round(timestamp * fps)``; fps comes from the argument, from a fomm_kp
    description, or from the smallest timestamp step (logged).
    """
    path = Path(path)
    names, meta, subjects = _read_containers(path)
    all_times = np.unique(np.concatenate([t for _, nodes in subjects for t, _, _ in nodes.values()]))
    rate = _frame_rate(path, fps, meta, all_times)
    frames = np.unique(np.round(all_times * rate).astype(np.int64))
    kp = np.full((len(frames), len(subjects), len(names), 2), np.nan, dtype=np.float32)
    scores = np.zeros(kp.shape[:3], dtype=np.float32)
    for n, (_, nodes) in enumerate(subjects):
        for k, node in enumerate(names):
            if node not in nodes:
                continue
            times, data, conf = nodes[node]
            rows = np.searchsorted(frames, np.round(times * rate).astype(np.int64))
            kp[rows, n, k] = data
            scores[rows, n, k] = np.nan_to_num(conf, nan=0.0)
    missing = np.isnan(kp).any(axis=-1)
    kp[missing] = np.nan
    scores = np.where(missing, 0.0, np.clip(scores, 0.0, 1.0)).astype(np.float32)
    return Tracks(keypoints=kp, scores=scores, frame_indices=frames, fps=rate, video=str(meta.get("video", "")),
                  keypoint_names=tuple(names), subject_names=tuple(name for name, _ in subjects))
