"""Tracks files by suffix: one table of the formats read and written, and the two verbs over it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from fomm_kp.errors import FommError
from fomm_kp.files import check_regular
from fomm_kp.optional import require
from fomm_kp.tracks.core import Tracks
from fomm_kp.tracks.dlc import load_dlc, save_dlc_csv, save_dlc_h5
from fomm_kp.tracks.npz import load_npz, save_npz
from fomm_kp.tracks.nwb import NwbSubject, load_nwb, save_nwb
from fomm_kp.tracks.sleap import load_sleap, save_sleap

__all__ = ["READERS", "WRITERS", "TRACK_SUFFIXES", "WRITABLE_TRACK_SUFFIXES", "FORMAT_MODULES", "require_format",
           "load_tracks", "save_tracks"]

# The one table of tracks formats: ours (.npz, lossless), DeepLabCut (.csv, .h5), SLEAP (.slp) and NWB.
READERS: dict[str, Callable[[Path], Tracks]] = {
    ".npz": load_npz, ".csv": load_dlc, ".h5": load_dlc, ".slp": load_sleap, ".nwb": load_nwb,
}
WRITERS: dict[str, Callable[[Tracks, Path], Path]] = {
    ".npz": save_npz, ".csv": save_dlc_csv, ".h5": save_dlc_h5, ".slp": save_sleap, ".nwb": save_nwb,
}
# The optional packages each format needs (the ``interop`` extra), checked before any work.
FORMAT_MODULES: dict[str, tuple[str, ...]] = {
    ".slp": ("sleap_io",), ".nwb": ("pynwb", "ndx_pose"), ".h5": ("h5py",), ".hdf5": ("h5py",),
}
TRACK_SUFFIXES = tuple(READERS)
WRITABLE_TRACK_SUFFIXES = tuple(WRITERS)


def require_format(path: str | os.PathLike | None) -> None:
    """The optional packages that reading or writing ``path`` needs must be installed: one line naming
    the extra otherwise (checked before any work)."""
    if path is not None:
        suffix = Path(path).suffix.lower()
        for module in FORMAT_MODULES.get(suffix, ()):
            require(module, f"a {suffix} file ({path})")


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
    path = check_regular(path, "tracks file")
    if path.is_dir():
        raise FommError(f"{path} is a folder, not a tracks file")
    if not path.is_file():
        raise FommError(f"tracks file not found: {path}")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise FommError(f"cannot read tracks from '{path.suffix.lower()}' ({path}): use .npz, DeepLabCut .csv/.h5, "
                        "SLEAP .slp or NWB .nwb")
    try:
        tracks = reader(path)
    except FommError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:  # the format libraries' own errors
        raise FommError(f"cannot read tracks from {path}: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}") from None
    if tracks.num_frames == 0:
        raise FommError(f"{path} holds no frames")
    return tracks
