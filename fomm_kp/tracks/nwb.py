"""Tracks as NWB (ndx-pose, which comes with sleap-io in the ``interop`` extra): read and written.

Laid out as the field reads NWB (``movement``'s ``load_poses.from_nwb_file`` with its default
arguments, DANDI, nwbinspector): an NWB file describes ONE subject, so each subject gets its own
file with a :class:`pynwb.file.Subject`, and its keypoints in an ndx-pose ``PoseEstimation`` named
``PoseEstimation`` in the ``behavior`` processing module; the file's identifier is the subject's id
and a random UUID (``<id>-<uuid4>``: unique across files, as nwbinspector asks; ``movement`` names
the individual after it). One subject: the file is written at the path given;
several: ``<stem>_<subject>.nwb`` beside it, one per subject (:func:`nwb_paths`), and
:func:`load_nwb_subjects` reads them back as one :class:`Tracks`. Frames at a regular step are
written with a starting time and a rate (NaN where a keypoint is missing), irregular ones with
timestamps. Subject metadata comes from :class:`NwbSubject` (``fomm-kp track --subject-id
--species``); left out, documented placeholders are written: species ``NCBITaxon_33208``
(Metazoa: an animal, species not stated), sex ``U`` (unknown), age ``P0D/`` (unknown).

What survives a round trip: keypoints, scores, frame indices, fps, keypoint and subject names.
Written with pynwb + ndx-pose directly rather than through sleap-io's writer, which rounds
non-integer frame rates down. Files of other layouts (one ``PoseEstimation`` per subject in one
file, as fomm_kp wrote before) are read too.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.optional import require
from fomm_kp.settings import check, text
from fomm_kp.tracks.core import Tracks, resolve_fps

__all__ = ["NwbSubject", "nwb_paths", "load_nwb", "load_nwb_subjects", "save_nwb", "PLACEHOLDER_SPECIES"]

log = logging.getLogger(__name__)

REFERENCE_FRAME = "(0, 0) is the top-left pixel of the original video frame; x right, y down"
PLACEHOLDER_SPECIES = "http://purl.obolibrary.org/obo/NCBITaxon_33208"  # Metazoa: an animal, species not stated
NodeData = tuple[np.ndarray, np.ndarray, np.ndarray]  # timestamps (T,), positions (T, 2), confidences (T,)


@dataclass(frozen=True)
class NwbSubject:
    """What an NWB file says about its subject.

    Attributes:
        subject_ids: one id per subject, or one id (a single subject; with several, each subject's
            name is appended to it: ``fly_subject0``); empty: the subjects' names.
        species: Latin binomial (``Drosophila melanogaster``) or an NCBI taxonomy IRI; default: the
            placeholder :data:`PLACEHOLDER_SPECIES`.
        sex: ``M``, ``F``, ``O`` or ``U`` (unknown). age: ISO 8601 duration (``P3D``) or range (``P0D/``).
    """

    subject_ids: tuple[str, ...] = ()
    species: str = PLACEHOLDER_SPECIES
    sex: str = "U"
    age: str = "P0D/"

    def __post_init__(self) -> None:
        object.__setattr__(self, "subject_ids", tuple(str(s).strip() for s in self.subject_ids if str(s).strip()))
        check(self, species=text(), sex=text(), age=text())
        for name in self.subject_ids:
            if "/" in name:
                raise FommError(f"subject id '{name}' must not contain '/' (NWB and DANDI use it in paths)")
        if self.sex not in ("M", "F", "O", "U"):
            raise FommError(f"sex must be M, F, O or U (unknown), got '{self.sex}'")

    def ids(self, names: Sequence[str]) -> list[str]:
        """The subject id of each subject named in ``names``."""
        if not self.subject_ids:
            return list(names)
        if len(self.subject_ids) == len(names):
            return list(self.subject_ids)
        if len(self.subject_ids) == 1:
            return [f"{self.subject_ids[0]}_{name}" for name in names]
        raise FommError(f"{len(self.subject_ids)} subject ids for {len(names)} subjects: give one or one per subject")


def nwb_paths(path: str | os.PathLike, subject_names: Sequence[str]) -> list[Path]:
    """The files :func:`save_nwb` writes for tracks of these subjects: ``path`` for one subject,
    ``<stem>_<subject>.nwb`` beside it for each of several."""
    path = Path(path)
    if len(subject_names) == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{name}{path.suffix}") for name in subject_names]


def _timing(tracks: Tracks) -> dict[str, Any]:
    """``starting_time`` and ``rate`` for frames at a regular step, else ``timestamps`` (seconds)."""
    frames = tracks.frame_indices
    steps = np.diff(frames)
    if len(frames) > 1 and (steps == steps[0]).all() and steps[0] > 0:
        return {"starting_time": float(frames[0]) / tracks.fps, "rate": tracks.fps / float(steps[0])}
    if len(frames) == 1:
        return {"starting_time": float(frames[0]) / tracks.fps, "rate": tracks.fps}
    return {"timestamps": frames.astype(np.float64) / tracks.fps}


def _nwbfile(pynwb: Any, ndx_pose: Any, tracks: Tracks, n: int, subject_id: str, metadata: NwbSubject) -> Any:
    """One subject's NWB file (in memory)."""
    name = tracks.subject_names[n]
    nwbfile = pynwb.NWBFile(
        session_description=f"fomm_kp keypoint tracks of {tracks.video or 'an unknown video'}, subject {name}",
        identifier=f"{subject_id}-{uuid.uuid4()}", session_start_time=datetime.datetime.now(datetime.timezone.utc),
        experiment_description="keypoints discovered without labels by fomm_kp (First Order Motion Model)",
        keywords=["pose estimation", "keypoints", "behavior"],
        subject=pynwb.file.Subject(subject_id=subject_id, species=metadata.species, sex=metadata.sex,
                                   age=metadata.age, description=f"subject '{name}' of the tracks"),
    )
    device = nwbfile.create_device(name="camera", description="video camera")
    skeleton = ndx_pose.Skeleton(name="skeleton", nodes=list(tracks.keypoint_names),
                                 edges=np.zeros((0, 2), dtype="uint8"), subject=nwbfile.subject)
    module = nwbfile.create_processing_module(name="behavior", description="keypoint tracks from fomm_kp")
    module.add(ndx_pose.Skeletons(skeletons=[skeleton]))
    timing = _timing(tracks)
    series = [
        ndx_pose.PoseEstimationSeries(
            name=node, description=f"position of {node}", data=tracks.keypoints[:, n, k].astype(np.float64),
            unit="pixels", reference_frame=REFERENCE_FRAME, confidence=tracks.scores[:, n, k].astype(np.float64),
            confidence_definition="fomm_kp keypoint confidence in [0, 1]", **timing)
        for k, node in enumerate(tracks.keypoint_names)
    ]
    meta = json.dumps({"software": "fomm_kp", "fps": float(tracks.fps), "video": tracks.video, "subject": name})
    module.add(ndx_pose.PoseEstimation(name="PoseEstimation", pose_estimation_series=series, description=meta,
                                       skeleton=skeleton, device=device, source_software="fomm_kp"))
    return nwbfile


def save_nwb(tracks: Tracks, path: str | os.PathLike, metadata: NwbSubject | None = None) -> Path:
    """Write Tracks as NWB, one file per subject (:func:`nwb_paths`), each atomically; returns the
    first file's path (the only one for one subject). All files are written or none."""
    pynwb = require("pynwb", "writing NWB files")
    ndx_pose = require("ndx_pose", "writing NWB files")
    if np.isnan(tracks.keypoints).all():
        raise FommError("nothing to write: every keypoint of every frame is missing")
    metadata = metadata or NwbSubject()
    ids = metadata.ids(tracks.subject_names)
    files = [_nwbfile(pynwb, ndx_pose, tracks, n, ids[n], metadata) for n in range(tracks.num_subjects)]
    paths = nwb_paths(path, tracks.subject_names)
    written: list[Path] = []
    try:
        for nwbfile, target in zip(files, paths):
            def write(tmp: Path, nwbfile: Any = nwbfile) -> None:
                with pynwb.NWBHDF5IO(str(tmp), "w") as io:
                    io.write(nwbfile)

            written.append(atomic_write(target, write, suffix=".nwb"))
    except BaseException:
        for done in written:
            done.unlink(missing_ok=True)
        raise
    if len(paths) > 1:
        log.info("NWB: one file per subject: %s", ", ".join(str(p) for p in paths))
    return paths[0]


def _fomm_meta(description: str | None) -> dict:
    """Our JSON metadata from a PoseEstimation description; {} for free text written by other tools."""
    text_ = (description or "").strip()
    if not text_.startswith("{"):
        return {}
    try:
        meta = json.loads(text_)
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


def _subject_name(container: Any, nwbfile: Any, meta: dict) -> str:
    """A container's subject: our stored name, its own name (``subject=...``), or the file's subject or identifier."""
    if "subject" in meta:
        return str(meta["subject"])
    if container.name != "PoseEstimation":
        return container.name.removeprefix("subject=").removeprefix("track=")
    if nwbfile.subject is not None and nwbfile.subject.subject_id:
        return str(nwbfile.subject.subject_id)
    return str(nwbfile.identifier)


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
        subjects = [(_subject_name(c, nwbfile, _fomm_meta(c.description)),
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


def _tracks(parts: list[tuple[str, dict[str, NodeData]]], names: list[str], rate: float, video: str) -> Tracks:
    all_times = np.concatenate([t for _, nodes in parts for t, _, _ in nodes.values()])
    frames = np.unique(np.round(all_times * rate).astype(np.int64))
    kp = np.full((len(frames), len(parts), len(names), 2), np.nan, dtype=np.float32)
    scores = np.zeros(kp.shape[:3], dtype=np.float32)
    for n, (_, nodes) in enumerate(parts):
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
    rows = ~np.isnan(kp).all(axis=(1, 2, 3))  # frames where nobody is present are not part of the tracks
    return Tracks(keypoints=kp[rows], scores=scores[rows], frame_indices=frames[rows], fps=rate, video=video,
                  keypoint_names=tuple(names), subject_names=tuple(name for name, _ in parts))


def load_nwb(path: str | os.PathLike, fps: float | None = None) -> Tracks:
    """Read every ndx-pose ``PoseEstimation`` of an NWB file as one subject each.

    Frame indices are ``round(timestamp * fps)``; fps comes from the argument, from a fomm_kp
    description, or from the smallest timestamp step (logged). Frames where every keypoint of
    every subject is missing are left out.
    """
    path = Path(path)
    names, meta, subjects = _read_containers(path)
    all_times = np.unique(np.concatenate([t for _, nodes in subjects for t, _, _ in nodes.values()]))
    return _tracks(subjects, names, _frame_rate(path, fps, meta, all_times), str(meta.get("video", "")))


def load_nwb_subjects(paths: Sequence[str | os.PathLike], fps: float | None = None) -> Tracks:
    """Read several NWB files (one subject each, as :func:`save_nwb` writes them) as one Tracks whose
    subjects are those of the files, in order; the keypoints must be the same in every file."""
    if not paths:
        raise FommError("no NWB files given")
    parts, names, rate, video = [], None, None, ""
    for path in map(Path, paths):
        file_names, meta, subjects = _read_containers(path)
        if names is not None and file_names != names:
            raise FommError(f"{path} names other keypoints ({', '.join(file_names)}) than {paths[0]}")
        names = file_names
        times = np.unique(np.concatenate([t for _, nodes in subjects for t, _, _ in nodes.values()]))
        rate = rate or _frame_rate(path, fps, meta, times)
        video = video or str(meta.get("video", ""))
        parts += subjects
    return _tracks(parts, names, rate, video)
