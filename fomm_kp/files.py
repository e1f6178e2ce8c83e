"""Writing files safely: whole or not at all, reproducibly, and never over one of the command's own inputs."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from fomm_kp.errors import FommError

__all__ = ["atomic_write", "leftover_temporaries", "write_npz", "same_file", "refuse_overwriting_inputs"]

PathLike = str | os.PathLike


def atomic_write(path: PathLike, write_fn: Callable[[Path], object], suffix: str | None = None) -> Path:
    """Call ``write_fn(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    Nothing half-written is ever left at ``path``: on failure the temporary file is removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
    except FileExistsError:
        raise FommError(f"cannot write {path}: a file stands where its folder should be") from None
    except NotADirectoryError:
        raise FommError(f"cannot write {path}: part of its folder path is a file") from None
    except PermissionError:
        raise FommError(f"cannot write {path}: permission denied") from None
    except OSError as exc:
        raise FommError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        write_fn(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def leftover_temporaries(path: PathLike) -> list[Path]:
    """Temporary files that :func:`atomic_write` left beside ``path`` when its process was killed
    (SIGKILL: no clean-up ran). Only safe to remove when no other process is writing ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{glob_escape(path.name)}.*{glob_escape(path.suffix)}"))


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def write_npz(path: PathLike, arrays: Mapping[str, np.ndarray], compress: bool = True) -> None:
    """``np.savez_compressed`` (or ``np.savez``), but the same arrays always give the same bytes:
    the zip entries carry a fixed timestamp (numpy stamps the current time). Arrays only, no pickles."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            with archive.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name the same file: the same resolved path (links followed), or, when
    both exist, the same inode (hard links)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def refuse_overwriting_inputs(outputs: Mapping[str, PathLike | None], inputs: Iterable[PathLike | None]) -> None:
    """Raise :class:`FommError` when an output path names one of the inputs (or another output).

    ``outputs`` maps a name for the message (``"--overlay"``) to a path (None: not written).
    """
    given_inputs = [Path(p) for p in inputs if p is not None]
    given_outputs = [(name, Path(p)) for name, p in outputs.items() if p is not None]
    for name, out in given_outputs:
        for source in given_inputs:
            if same_file(out, source):
                raise FommError(f"{name} {out} is one of the inputs ({source}); writing it would destroy the "
                                "input: choose another path")
    for i, (name, out) in enumerate(given_outputs):
        for other_name, other in given_outputs[i + 1:]:
            if same_file(out, other):
                raise FommError(f"{name} and {other_name} are the same file ({out}): choose two paths")


def refuse_folder_holding_inputs(name: str, folder: PathLike, inputs: Iterable[PathLike | None]) -> None:
    """Raise :class:`FommError` when an output ``folder`` is one of the inputs or holds one of them."""
    folder = Path(folder).resolve()
    for source in (Path(p) for p in inputs if p is not None):
        resolved = source.resolve()
        if resolved == folder or folder in resolved.parents:
            raise FommError(f"{name} {folder} holds the input {source}: write the outputs to another folder")
