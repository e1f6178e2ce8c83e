"""Hand-labelled body parts on individual frames: DeepLabCut ``CollectedData`` (CSV/H5) and SLEAP
``.slp`` label files, read into one small type for accuracy evaluation.

This is not a track reader (for whole-video DeepLabCut/SLEAP tracks see :mod:`fomm_kp.tracks`):
a labelled set is a handful of frames, each with an image (a file, or a frame index in a video)
and the pixel coordinates of P named parts.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.optional import require
from fomm_kp.tracks.dlc import read_dlc_table, row_names
from fomm_kp.video import read_image

__all__ = ["LabelledFrames", "load_labels", "read_dlc_labels", "read_slp_labels"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class LabelledFrames:
    """M labelled frames with P parts each.

    Attributes:
        points: float32 ``(M, P, 2)`` x, y in frame pixels (origin at the top-left pixel); NaN where
            a part is not labelled.
        part_names: P names.
        image_paths: M paths of the labelled images ("" when the frame lives in a video only).
        frame_indices: int64 ``(M,)`` frame index in ``video`` (from SLEAP, or parsed from DeepLabCut
            image names such as ``img0123.png``; -1 when unknown).
        video: path of the source video as stored in the label file ("" when unknown).
        source: the label file.
    """

    points: np.ndarray
    part_names: tuple[str, ...]
    image_paths: tuple[str, ...]
    frame_indices: np.ndarray
    video: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float32)
        if points.ndim != 3 or points.shape[2] != 2:
            raise FommError(f"LabelledFrames.points must have shape (M, P, 2), got {points.shape}")
        m, p, _ = points.shape
        if len(self.part_names) != p or len(self.image_paths) != m or np.shape(self.frame_indices) != (m,):
            raise FommError(
                f"LabelledFrames: {m} frames × {p} parts disagree with {len(self.part_names)} names, "
                f"{len(self.image_paths)} images, frame indices {np.shape(self.frame_indices)}"
            )
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "frame_indices", np.asarray(self.frame_indices, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def load_images(self) -> np.ndarray:
        """The labelled images as uint8 ``(M, H, W, 3)`` (all must exist and share one size)."""
        missing = [p for p in self.image_paths if not p or not Path(p).is_file()]
        if missing:
            raise FommError(f"{len(missing)} labelled images not found, e.g. '{missing[0]}' (labels: {self.source})")
        images = [read_image(p) for p in self.image_paths]
        shapes = {im.shape for im in images}
        if len(shapes) != 1:
            raise FommError(f"labelled images differ in size: {sorted(shapes)} ({self.source})")
        return np.stack(images)


_DIGITS = re.compile(r"(\d+)(?!.*\d)")


def _index_from_name(name: str) -> int:
    match = _DIGITS.search(Path(name).stem)
    return int(match.group(1)) if match else -1


def _resolve_image(name: str, label_file: Path) -> str:
    """DeepLabCut stores image paths relative to the project root (``labeled-data/<video>/img.png``)."""
    name = name.replace("\\", "/")
    candidates = [label_file.parent / Path(name).name]
    for up in label_file.parents:
        candidates.append(up / name)
    for path in candidates:
        if path.is_file():
            return str(path)
    return str(candidates[0])


def _pick_columns(parts: list[str], individuals: list[str] | None, individual: str | None) -> list[int]:
    if individuals is None:
        if individual is not None:
            raise FommError(f"--individual '{individual}' given but the label file has a single animal")
        return list(range(len(parts)))
    names = list(dict.fromkeys(individuals))
    if individual is None:
        if len(names) > 1:
            raise FommError(f"labels hold several animals ({', '.join(names)}): choose one with individual=")
        individual = names[0]
    if individual not in names:
        raise FommError(f"individual '{individual}' not in the labels ({', '.join(names)})")
    return [i for i, ind in enumerate(individuals) if ind == individual]


def _assemble(
    row_names: list[str], values: np.ndarray, parts: list[str], coords: list[str], path: Path
) -> LabelledFrames:
    """values (M, C) with column part/coord names → LabelledFrames."""
    part_order = list(dict.fromkeys(parts))
    points = np.full((len(row_names), len(part_order), 2), np.nan, dtype=np.float32)
    for column, (part, coord) in enumerate(zip(parts, coords)):
        if coord not in ("x", "y"):
            continue  # e.g. likelihood
        points[:, part_order.index(part), 0 if coord == "x" else 1] = values[:, column]
    images = tuple(_resolve_image(name, path) for name in row_names)
    indices = np.array([_index_from_name(name) for name in row_names], dtype=np.int64)
    log.info("read %d labelled frames with %d parts from %s", len(row_names), len(part_order), path)
    return LabelledFrames(points, tuple(part_order), images, indices, "", str(path))


def read_dlc_labels(path: str | os.PathLike, individual: str | None = None) -> LabelledFrames:
    """A DeepLabCut ``CollectedData_<scorer>.csv`` or ``.h5`` (single-animal, or one ``individual``
    of a multi-animal project), read by :func:`fomm_kp.tracks.dlc.read_dlc_table`. Image paths are
    resolved against the file's folder and its parents (DeepLabCut stores them relative to the
    project root)."""
    path = Path(path)
    if not path.is_file():
        raise FommError(f"label file not found: {path}")
    table = read_dlc_table(path)  # numbers and text only: nothing in the file is unpickled
    levels = list(table.column_names)
    if "bodyparts" not in levels or "coords" not in levels:
        raise FommError(f"{path} is not a DeepLabCut label file (column levels {levels})")
    parts = [c[levels.index("bodyparts")] for c in table.columns]
    coords = [c[levels.index("coords")] for c in table.columns]
    individuals = [c[levels.index("individuals")] for c in table.columns] if "individuals" in levels else None
    columns = _pick_columns(parts, individuals, individual)
    return _assemble(row_names(table), table.values[:, columns], [parts[c] for c in columns],
                     [coords[c] for c in columns], path)


def read_slp_labels(path: str | os.PathLike, individual: str | None = None) -> LabelledFrames:
    """User-labelled instances of a SLEAP ``.slp`` file (predictions are skipped). With several
    instances in a frame, the one of track ``individual`` (or the first) is taken."""
    path = Path(path)
    if not path.is_file():
        raise FommError(f"label file not found: {path}")
    sleap_io = require("sleap_io", "reading SLEAP .slp labels")
    labels = sleap_io.load_slp(str(path), open_videos=False)
    if not labels.skeletons:
        raise FommError(f"{path} has no skeleton")
    nodes = tuple(labels.skeletons[0].node_names)
    points, indices, videos = [], [], []
    for frame in labels.labeled_frames:
        user = [inst for inst in frame.instances if type(inst).__name__ == "Instance"]
        if individual is not None:
            user = [inst for inst in user if inst.track is not None and inst.track.name == individual]
        if not user:
            continue
        points.append(np.asarray(user[0].numpy(), dtype=np.float32)[:, :2])
        indices.append(int(frame.frame_idx))
        videos.append(str(frame.video.filename))
    if not points:
        raise FommError(f"{path} has no user-labelled instances" + (f" of track '{individual}'" if individual else ""))
    if len(set(videos)) > 1:
        raise FommError(f"{path} labels frames of {len(set(videos))} videos; evaluate one video at a time")
    log.info("read %d user-labelled frames with %d nodes from %s", len(points), len(nodes), path)
    return LabelledFrames(np.stack(points), nodes, ("",) * len(points), np.array(indices), videos[0], str(path))


def load_labels(path: str | os.PathLike, individual: str | None = None) -> LabelledFrames:
    """Labelled frames from a DeepLabCut ``.csv``/``.h5`` or a SLEAP ``.slp`` file."""
    suffix = Path(path).suffix.lower()
    if suffix == ".slp":
        return read_slp_labels(path, individual)
    if suffix in (".csv", ".h5", ".hdf5"):
        return read_dlc_labels(path, individual)
    raise FommError(f"unknown label format '{suffix}' ({path}): use DeepLabCut .csv/.h5 or SLEAP .slp")
