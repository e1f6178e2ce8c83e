"""Checks of command-line option values before any work: one line naming the option and what it may be.

The rules are those of the settings dataclasses (:mod:`fomm_kp.settings`), so ``--seed`` allows what
``train.seed`` allows; floats must be finite (``nan`` and ``inf`` parse as numbers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from fomm_kp.config import MAX_SUBJECTS
from fomm_kp.crops import check_box, check_box_in_frame
from fomm_kp.errors import FommError
from fomm_kp.runtime.detector import check_device as check_torch_device
from fomm_kp.settings import Rule
from fomm_kp.video import VideoInfo

__all__ = ["check_option", "check_choice", "check_device", "check_suffix", "parse_box", "box_in_frame",
           "parse_subjects"]


def check_option(name: str, value: Any, rule: Rule) -> None:
    """Raise :class:`FommError` when ``value`` (or any of a list of values) breaks ``rule``; None: not given."""
    if value is None:
        return
    for one in value if isinstance(value, (list, tuple)) else [value]:
        if not rule.allows(one):
            raise FommError(f"{name} must be {rule.describe()}, got {one!r}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """``value`` (or each of a list; None: not given) must be one of ``choices``."""
    if value is None:
        return
    for one in value if isinstance(value, (list, tuple)) else [value]:
        if one not in choices:
            raise FommError(f"{name} must be one of {', '.join(choices)}, got '{one}'")


def check_device(device: str | None) -> None:
    """``--device`` must be cpu, cuda or cuda:N, and present on this machine."""
    try:
        check_torch_device(device)
    except FommError as exc:
        raise FommError(f"--{exc}") from None


def check_suffix(name: str, path: Path | None, suffixes: Sequence[str]) -> None:
    """An output file must end in one of ``suffixes`` (it is written in the format the suffix names)."""
    if path is not None and path.suffix.lower() not in suffixes:
        raise FommError(f"{name} {path}: the file name must end in {', '.join(suffixes)}")


def parse_box(text: str | None) -> list[float] | None:
    """``--crop x0,y0,x1,y1`` as four finite numbers with x1 > x0 and y1 > y0 (None: not given)."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
        return list(check_box(values))
    except (ValueError, FommError):
        raise FommError(f"--crop must be four finite numbers x0,y0,x1,y1 with x1 > x0 and y1 > y0, got '{text}'") from None


def box_in_frame(box: list[float] | None, info: VideoInfo) -> None:
    """A ``--crop`` box must overlap the video's frame."""
    if box is not None:
        check_box_in_frame(box, info.width, info.height, info.path)


def parse_subjects(text: str | None) -> int | str | None:
    """``--subjects``: a whole number of subjects (1 to ``MAX_SUBJECTS``) or ``auto`` (None: not given)."""
    if text is None or text.strip().lower() == "auto":
        return None if text is None else "auto"
    try:
        count = int(text)
    except ValueError:
        raise FommError(f"--subjects must be a whole number or auto, got '{text}'") from None
    if not 1 <= count <= MAX_SUBJECTS:
        raise FommError(f"--subjects must be between 1 and {MAX_SUBJECTS} (or auto), got {count}")
    return count
