"""Tracks files by suffix: one table of the formats read and written, and the two verbs over it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from fomm_kp.errors import FommError
from fomm_kp.tracks.core import Tracks
from fomm_kp.tracks.dlc import load_dlc, save_dlc_csv, save_dlc_h5
from fomm_kp.tracks.npz import load_npz, save_npz
from fomm_kp.tracks.nwb import NwbSubject, load_nwb, save_nwb
from fomm_kp.tracks.sleap import load_sleap, save_sleap

__all__ = ["READERS", "WRITERS", "TRACK_SUFFIXES", "WRITABLE_TRACK_SUFFIXES", "load_tracks", "save_tracks"]

# The one table of tracks formats: ours (.npz, lossless), DeepLabCut (.csv, .h5), SLEAP (.slp) and NWB.
READERS: dict[str, Callable[[Path], Tracks]] = {
    ".npz": load_npz, ".csv": load_dlc, ".h5": load_dlc, ".slp": load_sleap, ".nwb": load_nwb,
}
WRITERS: dict[str, Callable[[Tracks, Path], Path]] = {
    ".npz": save_npz, ".csv": save_dlc_csv, ".h5": save_dlc_h5, ".slp": save_sleap, ".nwb": save_nwb,
}
TRACK_SUFFIXES = tuple(READERS)
WRITABLE_TRACK_SUFFIXES = tuple(WRITERS)


def save_tracks(tracks: Tracks, path: str | os.PathLike, subject: NwbSubject | None = None) -> Path:
    """Write tracks by suffix: ``.npz`` (lossless), ``.csv`` (DeepLabCut layout with likelihood),
    ``.h5`` (DeepLabCut's pandas table), ``.slp`` or ``.nwb`` (with the ``interop`` extra); atomically.
    NWB files describe one subject each (several subjects: one file per subject, see
    :func:`fomm_kp.tracks.nwb.nwb_paths`), with ``subject``'s metadata or documented placeholders."""
    path = Path(path)
    writer = WRITERS.get(path.suffix.lower())
    if writer is save_nwb:
        return save_nwb(tracks, path, subject)
    if writer is None:
        raise FommError(f"cannot write tracks as '{path.suffix.lower()}' ({path}): use .npz, .csv, .h5, .slp or .nwb")
    return writer(tracks, path)


def load_tracks(path: str | os.PathLike) -> Tracks:
    """Read tracks by suffix: our ``.npz``, DeepLabCut ``.csv``/``.h5``, SLEAP ``.slp`` or NWB ``.nwb``."""
    path = Path(path)
    if not path.is_file():
        raise FommError(f"tracks file not found: {path}")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise FommError(f"cannot read tracks from '{path.suffix.lower()}' ({path}): use .npz, DeepLabCut .csv/.h5, "
                        "SLEAP .slp or NWB .nwb")
    return reader(path)
