"""DeepLabCut files, read and written in one place: tables from ``.csv`` (the csv module) and ``.h5``
(h5py through :mod:`fomm_kp.tracks.dlc_h5`, never unpickled), tracks from those tables, and tracks
written in DeepLabCut's CSV layout with likelihood. Labelled frames for accuracy evaluation
(:mod:`fomm_kp.evaluation.labels`) read the same tables.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write, read_text
from fomm_kp.optional import require
from fomm_kp.tracks.core import Tracks, resolve_fps
from fomm_kp.tracks.dlc_h5 import DlcTable, read_dlc_h5

__all__ = ["HEADER_ROWS", "read_dlc_csv", "read_dlc_table", "row_names", "load_dlc", "save_dlc_csv", "save_dlc_h5"]

HEADER_ROWS = ("scorer", "individuals", "bodyparts", "coords")  # DeepLabCut's column levels, in order


def _to_float(cell: str, path: Path, line: int) -> float:
    cell = cell.strip()
    if not cell or cell.lower() == "nan":
        return float("nan")
    try:
        value = float(cell)
    except ValueError:
        raise FommError(f"{path} row {line}: not a number in a DeepLabCut file: '{cell[:40]}'") from None
    if not np.isfinite(value):
        raise FommError(f"{path} row {line}: '{cell[:40]}' is not a finite number")
    return value


def read_dlc_csv(path: str | os.PathLike) -> DlcTable:
    """A DeepLabCut CSV (analysis output or ``CollectedData``, with one or several index columns) as a
    table: header rows scorer/[individuals/]bodyparts/coords name the columns, the cells before the
    first coordinate column name the rows (joined with ``/``), empty cells (and ``nan``) are NaN.
    Every row must have as many cells as the header: a short or long row is an error, as is a cell
    that is not a finite number."""
    path = Path(path)
    try:
        rows = [row for row in csv.reader(io.StringIO(read_text(path, "DeepLabCut CSV"), newline="")) if row]
    except csv.Error as exc:
        raise FommError(f"{path} is not a DeepLabCut CSV ({exc})") from None
    header = {}
    for row in rows[:5]:
        key = next((cell for cell in row if cell.strip()), "").strip().lower()
        if key in HEADER_ROWS:
            header[key] = row
    coords = header.get("coords", [])
    first = next((i for i, cell in enumerate(coords) if cell.strip() in ("x", "y", "likelihood")), None)
    if "bodyparts" not in header or first is None:
        raise FommError(f"{path} is not a DeepLabCut CSV (no 'bodyparts' and 'coords' header rows)")
    data = rows[len(header):]
    if not data:
        raise FommError(f"{path} holds no rows of coordinates")
    width = len(coords) - first
    for line, row in enumerate(rows, start=1):
        if len(row) != len(coords):
            raise FommError(f"{path} row {line} has {len(row)} cells where the coords row has {len(coords)}")
    values = np.array([[_to_float(c, path, line) for c in row[first:]] for line, row in enumerate(data, len(header) + 1)],
                      dtype=np.float64).reshape(len(data), width)
    levels = [key for key in HEADER_ROWS if key in header]
    columns = [tuple(header[key][first + c].strip() if key == "coords" else header[key][first + c] for key in levels)
               for c in range(width)]
    return DlcTable(values, columns, levels, ["/".join(cell for cell in row[:first] if cell) for row in data])


def read_dlc_table(path: str | os.PathLike) -> DlcTable:
    """A DeepLabCut ``.csv`` or ``.h5`` as a table of numbers and text."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _checked_columns(read_dlc_csv(path), path)
    if suffix in (".h5", ".hdf5"):
        require("h5py", "reading DeepLabCut .h5 files")
        return _checked_columns(read_dlc_h5(path), path)
    raise FommError(f"not a DeepLabCut file: {path} (expected .csv or .h5)")


def _checked_columns(table: DlcTable, path: Path) -> DlcTable:
    """Every point (scorer, [individual,] body part) must have one x and one y column and at most one
    likelihood; no other coordinate."""
    levels = list(table.column_names)
    if "coords" not in levels or "bodyparts" not in levels:
        raise FommError(f"{path} is not a DeepLabCut table: column levels are {levels}, expected bodyparts and coords")
    at = levels.index("coords")
    points: dict[tuple, list[str]] = {}
    for column in table.columns:
        coord = str(column[at]).strip()
        if coord not in ("x", "y", "likelihood"):
            raise FommError(f"{path}: unknown DeepLabCut coordinate '{coord}' (expected x, y, likelihood)")
        points.setdefault(tuple(column[:at]) + tuple(column[at + 1:]), []).append(coord)
    for point, coords in points.items():
        if sorted(coords) not in (["x", "y"], ["likelihood", "x", "y"]):
            raise FommError(f"{path}: {'/'.join(str(v) for v in point)} has columns {coords}; "
                            "each point needs one x, one y and at most one likelihood")
    return table


def row_names(table: DlcTable) -> list[str]:
    """The rows' names: image paths of labelled data (index levels joined with ``/``) or frame numbers."""
    return ["/".join(str(v) for v in idx) if isinstance(idx, tuple) else str(idx) for idx in table.index]


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


def tracks_from_dlc_table(table: DlcTable, path: Path, fps: float | None) -> Tracks:
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
        fps=resolve_fps(fps, path),
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
    return tracks_from_dlc_table(read_dlc_table(path), path, fps)


def save_dlc_csv(tracks: Tracks, path: str | os.PathLike, scorer: str = "fomm_kp") -> Path:
    """Write tracks in DeepLabCut's CSV layout: header rows scorer/(individuals)/bodyparts/coords, one
    row per frame with x, y and likelihood of every keypoint (atomically)."""
    return atomic_write(path, lambda tmp: _write_dlc_csv(tracks, tmp, scorer))


def _dlc_columns(tracks: Tracks, scorer: str) -> tuple[list[tuple[str, ...]], list[str]]:
    """DeepLabCut's column tuples (with an ``individuals`` level for several subjects) and level names."""
    if tracks.num_subjects > 1:
        names = list(HEADER_ROWS)
        return [(scorer, s, k, c) for s in tracks.subject_names for k in tracks.keypoint_names
                for c in ("x", "y", "likelihood")], names
    return [(scorer, k, c) for k in tracks.keypoint_names for c in ("x", "y", "likelihood")], [
        "scorer", "bodyparts", "coords"]


def _dlc_values(tracks: Tracks) -> np.ndarray:
    """``(T, N·K·3)`` float64: x, y, likelihood of every keypoint of every subject (NaN where missing)."""
    kp = tracks.keypoints.astype(np.float64)
    return np.concatenate([kp, tracks.scores.astype(np.float64)[..., None]], axis=-1).reshape(tracks.num_frames, -1)


def save_dlc_h5(tracks: Tracks, path: str | os.PathLike, scorer: str = "fomm_kp") -> Path:
    """Write tracks as DeepLabCut's analysis ``.h5`` (atomically): a pandas table under the key
    ``df_with_missing`` (``format="table"``, as DeepLabCut writes it) with MultiIndex columns
    scorer/(individuals)/bodyparts/coords, float64 values only (no object columns) and the frame
    numbers as its index. Read back by :func:`load_dlc` (h5py, nothing unpickled), pandas
    (``read_hdf``), DeepLabCut and ``movement``; needs PyTables (the ``interop`` extra)."""
    require("tables", "writing DeepLabCut .h5 files")
    pandas = require("pandas", "writing DeepLabCut .h5 files")
    columns, names = _dlc_columns(tracks, scorer)
    frame = pandas.DataFrame(_dlc_values(tracks), columns=pandas.MultiIndex.from_tuples(columns, names=names),
                             index=pandas.Index(tracks.frame_indices.astype(np.int64)))
    return atomic_write(path, lambda tmp: frame.to_hdf(tmp, key="df_with_missing", format="table", mode="w"),
                        suffix=".h5")


def _write_dlc_csv(tracks: Tracks, path: Path, scorer: str) -> None:
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
