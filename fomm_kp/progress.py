"""Long jobs in pieces: the one progress callback type, and the one batching loop over a stream.

Every long call of the library (training, tracking, distillation, export, animation, evaluation,
scoring) takes ``progress: Progress | None`` and calls it with an :class:`Update` after each piece
of work; the CLI turns updates into progress bars, the library itself only logs. Streams of frames
are cut into batches with :func:`batched`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, TypeVar

from fomm_kp.errors import FommError

__all__ = ["Update", "Progress", "report", "batched"]

T = TypeVar("T")


@dataclass(frozen=True)
class Update:
    """How far a job is.

    Attributes:
        done: units finished (frames, steps, videos, ...).
        total: units in all (None: not known yet). Under a time limit, training estimates it.
        stage: what is being done now ("training", "teacher targets", a video's name, ...).
        losses: smoothed loss terms, for training steps.
        files: files written at this point (a checkpoint, a preview).
    """

    done: int
    total: int | None
    stage: str = ""
    losses: Mapping[str, float] = field(default_factory=dict)
    files: tuple[Path, ...] = ()


Progress = Callable[[Update], None]


def report(progress: Progress | None, done: int, total: int | None, stage: str = "", **extra: object) -> None:
    """Call ``progress`` (when given) with an :class:`Update`."""
    if progress is not None:
        progress(Update(done, total, stage, **extra))


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` consecutive items (the last one shorter), streaming: memory holds one batch."""
    if size < 1:
        raise FommError(f"batch size must be at least 1, got {size}")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
