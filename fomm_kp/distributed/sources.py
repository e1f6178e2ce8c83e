"""Which files a many-video command works on, and where each one's output goes.

A command is given items; each item is a folder (the files in it with a wanted suffix), a list file
(``.txt``: one path per line, relative to the list's folder; blank lines and ``#`` comments are
skipped), a glob pattern (``videos/*.mp4``) or one file. :func:`expand_sources` turns them into one
ordered list without repeats; :func:`output_paths` gives each source its output file in a folder and
refuses two sources that would write the same file.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable, Sequence

from fomm_kp.errors import FommError

__all__ = ["LIST_SUFFIXES", "is_many", "expand_sources", "output_paths"]

LIST_SUFFIXES = (".txt", ".list")
_GLOB_CHARACTERS = "*?["


def _is_pattern(text: str) -> bool:
    return any(c in text for c in _GLOB_CHARACTERS) and not Path(text).exists()


def is_many(items: Sequence[str | os.PathLike], suffixes: Sequence[str]) -> bool:
    """Whether ``items`` name several sources (or may: a glob, a list file, a folder holding files
    with one of ``suffixes``) rather than one file. A folder without such files is one source (a
    video stored as a folder of images)."""
    if len(items) != 1:
        return True
    item = str(items[0])
    path = Path(item)
    if path.is_dir():
        wanted = tuple(s.lower() for s in suffixes)
        return any(p.is_file() and p.suffix.lower() in wanted for p in path.iterdir())
    return path.suffix.lower() in LIST_SUFFIXES or _is_pattern(item)


def _from_folder(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                   and not p.name.startswith("."))
    if not found:
        raise FommError(f"no {' / '.join(suffixes)} files in {folder}")
    return found


def _from_list(listing: Path) -> list[Path]:
    try:
        lines = listing.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FommError(f"cannot read the list file {listing}: {exc}") from None
    paths = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        path = Path(text).expanduser()
        path = path if path.is_absolute() else listing.parent / path
        if not path.is_file():
            raise FommError(f"{listing}, line {number}: file not found: {path}")
        paths.append(path)
    if not paths:
        raise FommError(f"the list file {listing} names no files")
    return paths


def _expand_one(item: str, suffixes: tuple[str, ...]) -> list[Path]:
    path = Path(item).expanduser()
    if path.is_dir():
        return _from_folder(path, suffixes)
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        return _from_list(path)
    if path.is_file():
        return [path]
    if _is_pattern(item):
        found = sorted(Path(p) for p in glob.glob(os.path.expanduser(item)) if Path(p).is_file())
        if not found:
            raise FommError(f"no files match {item}")
        return found
    raise FommError(f"not found: {item}")


def expand_sources(items: Iterable[str | os.PathLike], suffixes: Sequence[str]) -> list[Path]:
    """The files ``items`` name, in order, each once. Folders contribute their files with one of
    ``suffixes`` (lower case, with the dot); a named file is taken whatever its suffix."""
    wanted = tuple(s.lower() for s in suffixes)
    seen: dict[str, Path] = {}
    for item in items:
        for path in _expand_one(str(item), wanted):
            seen.setdefault(str(path.resolve()), path)
    if not seen:
        raise FommError("no input files given")
    return list(seen.values())


def output_paths(sources: Sequence[Path], folder: str | os.PathLike, suffix: str) -> list[Path]:
    """``folder / (source stem + suffix)`` for each source; two sources with the same stem are an error
    (one would overwrite the other's output), and so is an output that is one of the sources."""
    folder = Path(folder)
    outputs: dict[str, Path] = {}
    for source in sources:
        out = folder / f"{source.stem}{suffix}"
        if out.name in outputs:
            raise FommError(f"{outputs[out.name]} and {source} would both write {out}: rename one, or run them apart")
        if out.resolve() == source.resolve():
            raise FommError(f"the output {out} would replace its input: choose another output folder")
        outputs[out.name] = source
    return [folder / f"{source.stem}{suffix}" for source in sources]
