"""Writing files safely: whole or not at all, and never over one of the command's own inputs."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from fomm_kp.errors import FommError

__all__ = ["atomic_write", "same_file", "refuse_overwriting_inputs", "refuse_folder_holding_inputs", "read_text",
           "check_regular", "check_writable", "check_outputs", "check_output_folder", "staged_folder", "rebased",
           "remove_stale_temporaries", "all_or_nothing", "make_folders",
           "remove_empty_folders"]

PathLike = str | os.PathLike


def atomic_write(path: PathLike, write_fn: Callable[[Path], object], suffix: str | None = None) -> Path:
    """Call ``write_fn(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    Nothing half-written is ever left at ``path``: on failure the temporary file is removed.
    """
    path = Path(path)
    created: list[Path] = []
    try:
        created = make_folders(path.parent)
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
        remove_empty_folders(created)
        raise
    return path


def make_folders(folder: PathLike) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, deepest last (for :func:`remove_empty_folders`)."""
    folder = Path(folder)
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        each.mkdir(exist_ok=True)
    return list(reversed(missing))


def remove_empty_folders(created: Iterable[Path]) -> None:
    """Remove the folders :func:`make_folders` created, deepest first, where they are still empty."""
    for folder in reversed(list(created)):
        with contextlib.suppress(OSError):
            folder.rmdir()


def remove_stale_temporaries(folder: PathLike, names: Iterable[str]) -> list[Path]:
    """Remove the temporary files :func:`atomic_write` leaves beside ``folder/name`` when a process is
    killed mid-write (``.NAME.XXXXXXXX.SUFFIX``); returns what was removed."""
    removed = []
    for name in names:
        for stale in Path(folder).glob(f".{name}.*"):
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()
                removed.append(stale)
    return removed


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


def check_writable(name: str, path: PathLike, folder: bool = False) -> None:
    """``path`` (an output file, or with ``folder`` an output folder) can be written: it is not a
    folder (a file) where a file (a folder) goes, no part of its folder path is a file, and the
    nearest existing folder above it is writable (not read-only, not immutable)."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise FommError(f"{name} {path} is {'a file' if folder else 'a folder'}: give a {'folder' if folder else 'file'} path")
    parent = path if folder and path.is_dir() else path.parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise FommError(f"cannot write {name} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FommError(f"cannot write {name} {path}: the folder {parent} is read-only")
    # Permission bits do not tell everything (a read-only mount, /proc, a full disk, root on an
    # immutable folder): try for real, with a temporary file that is removed at once.
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise FommError(f"cannot write {name} {path}: {exc.strerror or exc} in {parent}") from None


def check_outputs(outputs: Mapping[str, PathLike | None], inputs: Iterable[PathLike | None]) -> None:
    """Before any work: inputs are regular files or folders (:func:`check_regular`), no output names
    an input (:func:`refuse_overwriting_inputs`), and every output can be written (:func:`check_writable`)."""
    inputs = [p for p in inputs if p is not None]
    for source in inputs:
        check_regular(source)
    refuse_overwriting_inputs(outputs, inputs)
    for name, path in outputs.items():
        if path is not None:
            check_writable(name, path)


def refuse_folder_holding_inputs(name: str, folder: PathLike, inputs: Iterable[PathLike | None]) -> None:
    """Raise :class:`FommError` when an output ``folder`` is one of the inputs or holds one of them,
    when an input is not a regular file or folder, or when ``folder`` cannot be written."""
    inputs = [p for p in inputs if p is not None]
    for source in inputs:
        check_regular(source)
    check_writable(name, folder, folder=True)
    folder = Path(folder).resolve()
    for source in (Path(p) for p in inputs):
        resolved = source.resolve()
        if resolved == folder or folder in resolved.parents:
            raise FommError(f"{name} {folder} holds the input {source}: write the outputs to another folder")


def check_regular(path: PathLike, what: str = "input") -> Path:
    """``path`` must be a regular file or a folder (links followed): a FIFO, socket or device would
    block a reader or never end, so it is refused at once. A path that does not exist passes (its
    reader says so)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise FommError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise FommError(f"{what} {path} is {kind}: give a regular file")
    return path


def read_text(path: PathLike, what: str = "file") -> str:
    """The text of a UTF-8 file (a byte-order mark is dropped); a binary file is a :class:`FommError`."""
    path = check_regular(path, what)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FommError(f"{path} is not a text {what} (not UTF-8)") from None
    except FileNotFoundError:
        raise FommError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise FommError(f"{path} is a folder, not a {what}") from None


# --------------------------------------------------------------------------------------------
# Outputs of several files: written beside the target, moved in at the end.


def check_output_folder(folder: PathLike, signature: str, option: str = "--out") -> None:
    """An output folder must be new, empty, or an earlier output of the same command (it holds
    ``signature``, a file every such output has): fomm_kp never writes among a user's other files."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FommError(f"{option} {folder} is a file, not a folder")
    if folder.is_dir():
        others = sorted(p.name for p in folder.iterdir())
        if others and not (folder / signature).is_file():
            raise FommError(f"{option} {folder} already holds other files ({others[0]}, ...) and is not an earlier "
                            f"output (no {signature}): choose a new or empty folder")


@contextlib.contextmanager
def staged_folder(folder: PathLike) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to write a multi-file output into. When the block ends
    normally its files are moved into ``folder`` (renamed as a whole when ``folder`` does not exist
    yet; else file by file, replacing files of the same name and leaving every other file alone);
    when it fails or is interrupted the temporary folder is removed and ``folder`` is untouched."""
    folder = Path(folder)
    created: list[Path] = []
    try:
        created = make_folders(folder.parent)
        stage = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.partial-"))
    except OSError as exc:
        remove_empty_folders(created)
        raise FommError(f"cannot write {folder}: {exc.strerror or exc}") from None
    done = False
    try:
        yield stage
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes 0700 folders; give the usual permissions
        if not folder.exists():
            os.rename(stage, folder)
        else:
            for source in sorted(p for p in stage.rglob("*") if not p.is_dir()):
                target = folder / source.relative_to(stage)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
        done = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not done:
            remove_empty_folders(created)


def rebased(value: Any, stage: Path, folder: Path) -> Any:
    """``value`` with every path under ``stage`` moved to the same place under ``folder`` (paths in
    dicts, lists, tuples, named tuples and dataclasses too): the paths a function wrote in :func:`staged_folder`."""
    if isinstance(value, Path):
        try:
            return Path(folder) / value.relative_to(stage)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {key: rebased(v, stage, folder) for key, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: rebased(getattr(value, f.name), stage, folder)
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(rebased(v, stage, folder) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(rebased(v, stage, folder) for v in value)
    return value


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@contextlib.contextmanager
def all_or_nothing(*paths: PathLike | None) -> Iterator[None]:
    """Output files written together: when the block fails or is interrupted, each of ``paths``
    that the block wrote is removed (a file that was there before and was not touched stays), so a
    command leaves all its outputs or none."""
    files = [Path(p) for p in paths if p is not None]
    before = {path: _stamp(path) for path in files}
    try:
        yield
    except BaseException:
        for path in files:
            if path.is_file() and _stamp(path) != before[path]:
                with contextlib.suppress(OSError):
                    path.unlink()
        raise
