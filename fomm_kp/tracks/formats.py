"""Tracks from and to other pose tools: DeepLabCut CSV/H5, SLEAP ``.slp`` and NWB.

DeepLabCut CSV files are read with pandas, H5 files with h5py as numbers and text only (never
unpickled: :mod:`fomm_kp.dlc_h5`); SLEAP goes through sleap-io and NWB
through pynwb + ndx-pose (sleap-io's dependencies). Both
are optional: install them with ``pip install fomm_kp[interop]``. They are imported only when a
file of that kind is read or written, and a missing one is a :class:`FommError` that says so.

What survives a round trip:
- ``.csv`` (DeepLabCut layout written by :func:`fomm_kp.tracks.save_tracks`): keypoints, scores
  (the ``likelihood`` column), frame indices, keypoint and subject names. DeepLabCut files carry no
  frame rate: pass ``fps`` (default 30 with a logged warning).
- ``.slp``: keypoints, scores, frame indices, keypoint and subject (track) names, fps (kept in the
  file's provenance). Jacobians and covariances are not part of SLEAP's model and are dropped.
- ``.nwb`` (ndx-pose, which comes with sleap-io): keypoints, scores, frame indices, fps, keypoint
  and subject names.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from fomm_kp.tracks.dlc_h5 import DlcTable, read_dlc_h5
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.tracks.core import Tracks

__all__ = ["load", "save", "load_dlc", "load_sleap", "save_sleap", "load_nwb", "save_nwb", "DEFAULT_FPS"]

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
_INSTALL_HINT = "pip install fomm_kp[interop]"


def _require(module: str, what: str) -> Any:
    """Import an optional dependency or raise a FommError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FommError(f"{what} needs the optional package '{module}': {_INSTALL_HINT}") from exc


def _resolve_fps(fps: float | None, path: Path, stored: float | None = None) -> float:
    if fps is not None:
        if not np.isfinite(fps) or fps <= 0:
            raise FommError(f"fps must be a positive number, got {fps}")
        return float(fps)
    if stored is not None and np.isfinite(stored) and stored > 0:
        return float(stored)
    log.warning("%s does not state a frame rate; assuming %.1f fps (pass fps= to set it)", path, DEFAULT_FPS)
    return DEFAULT_FPS


# --------------------------------------------------------------------------------------------
# DeepLabCut
# --------------------------------------------------------------------------------------------


def _frame_indices_from_index(index: Any) -> np.ndarray:
    """Frame numbers from a DeepLabCut row index: integers as they are, else the row order.

    Labelled-data files index rows by image path (``labeled-data/x/img0012.png``); the number in
    such a name is a counter, not a frame index, so rows are numbered 0..T-1.
    """
    values = list(index)
    try:
        frames = np.array([int(str(v)) for v in values], dtype=np.int64)
    except ValueError:
        return np.arange(len(values), dtype=np.int64)
    if len(np.unique(frames)) != len(frames):
        raise FommError("DeepLabCut file has repeated frame numbers in its index column")
    return frames


def _tracks_from_dlc_table(table: DlcTable, path: Path, fps: float | None) -> Tracks:
    """Convert a DeepLabCut table (columns named by scorer, [individuals,] bodyparts, coords) into Tracks."""
    levels = list(table.column_names)
    if "bodyparts" not in levels or "coords" not in levels:
        raise FommError(f"{path} is not a DeepLabCut table: column levels are {levels}, expected bodyparts and coords")
    has_individuals = "individuals" in levels
    bodyparts_all = [c[levels.index("bodyparts")] for c in table.columns]
    individuals_all = ([c[levels.index("individuals")] for c in table.columns] if has_individuals
                       else ["subject0"] * len(table.columns))
    coords_all = [c[levels.index("coords")] for c in table.columns]
    subjects = list(dict.fromkeys(str(s) for s in individuals_all))
    keypoints_names = list(dict.fromkeys(str(b) for b in bodyparts_all))
    t = len(table.index)
    kp = np.full((t, len(subjects), len(keypoints_names), 2), np.nan, dtype=np.float32)
    scores = np.zeros((t, len(subjects), len(keypoints_names)), dtype=np.float32)
    has_likelihood = np.zeros((len(subjects), len(keypoints_names)), dtype=bool)
    values = table.values
    for col, (ind, part, coord) in enumerate(zip(individuals_all, bodyparts_all, coords_all)):
        n, k = subjects.index(str(ind)), keypoints_names.index(str(part))
        coord = str(coord)
        if coord == "x":
            kp[:, n, k, 0] = values[:, col]
        elif coord == "y":
            kp[:, n, k, 1] = values[:, col]
        elif coord == "likelihood":
            scores[:, n, k] = np.nan_to_num(values[:, col], nan=0.0)
            has_likelihood[n, k] = True
        else:
            raise FommError(f"{path}: unknown DeepLabCut coordinate '{coord}' (expected x, y, likelihood)")
    missing = np.isnan(kp).any(axis=-1)
    kp[missing] = np.nan
    # Labelled data has no likelihood column: a present point is certain, a missing one is not.
    labelled_scores = np.where(missing, 0.0, 1.0).astype(np.float32)
    scores = np.where(has_likelihood[None], scores, labelled_scores)
    scores = np.clip(scores, 0.0, 1.0)
    return Tracks(
        keypoints=kp,
        scores=scores,
        frame_indices=_frame_indices_from_index(table.index),
        fps=_resolve_fps(fps, path),
        video="",
        keypoint_names=tuple(keypoints_names),
        subject_names=tuple(subjects),
    )


def load_dlc(path: str | os.PathLike, fps: float | None = None) -> Tracks:
    """Read a DeepLabCut ``.csv`` or ``.h5`` (labelled data or analysis output, single or multi-animal).

    Rows become frames: the index column's integers when it holds frame numbers, else 0..T-1.
    Points without a likelihood column get score 1 (present) or 0 (missing).
    """
    path = Path(path)
    pd = _require("pandas", "reading DeepLabCut files")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="") as fh:
            first = [fh.readline() for _ in range(4)]
        if not first[0].startswith("scorer"):
            raise FommError(f"{path} is not a DeepLabCut CSV: its first row does not start with 'scorer'")
        header = [0, 1, 2, 3] if first[1].startswith("individuals") else [0, 1, 2]
        try:
            df = pd.read_csv(path, header=header, index_col=0)
        except (ValueError, pd.errors.ParserError) as exc:
            raise FommError(f"cannot parse DeepLabCut CSV {path}: {exc}") from exc
        try:
            values = df.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise FommError(f"{path}: a coordinate cell holds text, not a number") from None
        table = DlcTable(values, [tuple(str(v) for v in c) for c in df.columns],
                         [str(n) for n in df.columns.names], list(df.index))
    elif suffix in (".h5", ".hdf5"):
        _require("h5py", "reading DeepLabCut .h5 files")
        table = read_dlc_h5(path)
    else:
        raise FommError(f"not a DeepLabCut file: {path} (expected .csv or .h5)")
    return _tracks_from_dlc_table(table, path, fps)


# --------------------------------------------------------------------------------------------
# SLEAP and NWB (sleap-io)
# --------------------------------------------------------------------------------------------


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
        fps=_resolve_fps(fps, path, stored_fps),
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
    sio = _require("sleap_io", "reading SLEAP files")
    try:
        labels = sio.load_slp(str(path), open_videos=False)
    except (OSError, KeyError, ValueError) as exc:
        raise FommError(f"cannot read {path}: {exc.__class__.__name__}: {exc}") from exc
    return _tracks_from_labels(labels, path, fps, video_index)


def _labels_from_tracks(tracks: Tracks) -> Any:
    sio = _require("sleap_io", "writing SLEAP files")
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
    sio = _require("sleap_io", "writing SLEAP files")
    labels = _labels_from_tracks(tracks)
    return atomic_write(path, lambda tmp: sio.save_slp(labels, str(tmp), verbose=False), suffix=".slp")


def save_nwb(tracks: Tracks, path: str | os.PathLike) -> Path:
    """Write Tracks as NWB: an ndx-pose ``PoseEstimation`` per subject in a ``behavior`` module.

    Written with pynwb + ndx-pose directly (both come with sleap-io) rather than through
    sleap-io's writer, which rounds non-integer frame rates down. Every series carries explicit
    timestamps ``frame_indices / fps``; the frame rate is kept in each container's description.
    """
    pynwb = _require("pynwb", "writing NWB files")
    ndx_pose = _require("ndx_pose", "writing NWB files")
    import datetime
    import json
    import uuid

    timestamps = tracks.frame_indices.astype(np.float64) / tracks.fps
    nwbfile = pynwb.NWBFile(
        session_description=f"fomm_kp keypoint tracks of {tracks.video or 'an unknown video'}",
        identifier=str(uuid.uuid4()),
        session_start_time=datetime.datetime.now(datetime.timezone.utc),
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
        series = []
        for k, node in enumerate(tracks.keypoint_names):
            series.append(
                ndx_pose.PoseEstimationSeries(
                    name=node,
                    description=f"position of {node}",
                    data=tracks.keypoints[present, n, k].astype(np.float64),
                    unit="pixels",
                    reference_frame="(0, 0) is the top-left pixel of the original video frame; x right, y down",
                    timestamps=timestamps[present],
                    confidence=tracks.scores[present, n, k].astype(np.float64),
                    confidence_definition="fomm_kp keypoint confidence in [0, 1]",
                )
            )
        module.add(
            ndx_pose.PoseEstimation(
                name=f"subject={subject}",
                pose_estimation_series=series,
                description=meta,
                skeleton=skeleton,
                device=device,
                source_software="fomm_kp",
            )
        )
        written += 1
    if written == 0:
        raise FommError("nothing to write: every keypoint of every frame is missing")

    def write(tmp: Path) -> None:
        with pynwb.NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwbfile)

    return atomic_write(path, write, suffix=".nwb")


def _fomm_meta(description: str | None) -> dict:
    """Our JSON metadata from a PoseEstimation description; {} for free text written by other tools."""
    import json

    text = (description or "").strip()
    if not text.startswith("{"):
        return {}
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return meta if isinstance(meta, dict) and meta.get("software") == "fomm_kp" else {}


def load_nwb(path: str | os.PathLike, fps: float | None = None) -> Tracks:
    """Read every ndx-pose ``PoseEstimation`` of an NWB file as one subject each.

    Frame indices are ``round(timestamp * fps)``; fps comes from the argument, from a fomm_kp
    description, or from the smallest timestamp step (logged).
    """
    path = Path(path)
    pynwb = _require("pynwb", "reading NWB files")
    ndx_pose = _require("ndx_pose", "reading NWB files")
    try:
        io = pynwb.NWBHDF5IO(str(path), "r")
    except (OSError, ValueError) as exc:
        raise FommError(f"cannot read NWB file {path}: {exc}") from exc
    with io:
        nwbfile = io.read()
        containers = [
            c
            for module in nwbfile.processing.values()
            for c in module.data_interfaces.values()
            if isinstance(c, ndx_pose.PoseEstimation)
        ]
        if not containers:
            raise FommError(f"{path} holds no ndx-pose PoseEstimation")
        names = list(containers[0].pose_estimation_series.keys())
        if containers[0].skeleton is not None:
            nodes = [str(x) for x in containers[0].skeleton.nodes[:]]
            names = [n for n in nodes if n in names] + [n for n in names if n not in nodes]
        meta = _fomm_meta(containers[0].description)
        stored_fps = float(meta["fps"]) if "fps" in meta else None
        video = str(meta.get("video", ""))
        per_subject = []
        for c in containers:
            per_node = {}
            for node in names:
                s = c.pose_estimation_series.get(node)
                if s is None:
                    continue
                data = np.asarray(s.data[:], dtype=np.float64)
                if s.timestamps is not None:
                    times = np.asarray(s.timestamps[:], dtype=np.float64)
                else:
                    times = float(s.starting_time or 0.0) + np.arange(len(data)) / float(s.rate)
                conf = np.asarray(s.confidence[:], dtype=np.float64) if s.confidence is not None else np.ones(len(data))
                per_node[node] = (times, data[:, :2], conf)
            per_subject.append((c.name.removeprefix("subject=").removeprefix("track="), per_node))
    all_times = np.unique(np.concatenate([t for _, nodes in per_subject for t, _, _ in nodes.values()]))
    if fps is None and stored_fps is None:
        steps = np.diff(all_times)
        steps = steps[steps > 0]
        if steps.size == 0:
            raise FommError(f"cannot infer a frame rate from {path}: pass fps=")
        stored_fps = float(1.0 / steps.min())
        log.info("%s: frame rate inferred from timestamps as %.3f fps", path, stored_fps)
    rate = _resolve_fps(fps, path, stored_fps)
    frames = np.unique(np.round(all_times * rate).astype(np.int64))
    kp = np.full((len(frames), len(per_subject), len(names), 2), np.nan, dtype=np.float32)
    scores = np.zeros(kp.shape[:3], dtype=np.float32)
    for n, (_, nodes) in enumerate(per_subject):
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
    return Tracks(
        keypoints=kp,
        scores=scores,
        frame_indices=frames,
        fps=rate,
        video=video,
        keypoint_names=tuple(names),
        subject_names=tuple(name for name, _ in per_subject),
    )


# --------------------------------------------------------------------------------------------
# Dispatch used by fomm_kp.tracks
# --------------------------------------------------------------------------------------------


def load(path: str | os.PathLike, fps: float | None = None) -> Tracks:
    """Read tracks from a DeepLabCut ``.csv``/``.h5``, SLEAP ``.slp`` or NWB ``.nwb`` file."""
    path = Path(path)
    if not path.is_file():
        raise FommError(f"tracks file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".h5"):
        return load_dlc(path, fps=fps)
    if suffix == ".slp":
        return load_sleap(path, fps=fps)
    if suffix == ".nwb":
        return load_nwb(path, fps=fps)
    raise FommError(f"cannot import tracks from '{suffix}' ({path}): use DeepLabCut .csv/.h5, SLEAP .slp or .nwb")


def save(tracks: Tracks, path: str | os.PathLike) -> Path:
    """Write tracks as SLEAP ``.slp`` or NWB ``.nwb``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".slp":
        return save_sleap(tracks, path)
    if suffix == ".nwb":
        return save_nwb(tracks, path)
    raise FommError(f"cannot export tracks as '{suffix}' ({path}): interop writes .slp and .nwb")

