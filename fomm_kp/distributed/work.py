"""What runs for one source, wherever it runs: the :class:`Job` protocol, :class:`RunOptions`,
:class:`Outcome` and :func:`run_one` (which Ray workers execute)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Protocol

import torch

from fomm_kp.errors import FommError
from fomm_kp.files import leftover_temporaries
from fomm_kp.settings import check, integer

__all__ = ["Job", "RunOptions", "Outcome", "OnOutcome", "run_one", "one_line"]

Status = Literal["done", "skipped", "failed"]


class Job(Protocol):
    """What to do with one source. Instances travel to Ray workers: keep them small and picklable
    (paths and settings, not loaded models)."""

    stage: str  # what the job does, for progress ("tracking", "features", ...)

    def outputs(self, source: Path) -> tuple[Path, ...]:
        """The files the job writes for ``source``; all present means done."""
        ...

    def run(self, source: Path) -> int:
        """Make the outputs of ``source`` (each written atomically); returns the frames processed."""
        ...


@dataclass(frozen=True)
class RunOptions:
    """How :func:`run_many` runs.

    Attributes:
        workers: worker processes of a local Ray instance (0: one per CPU core). 1: in this process,
            one source after another (also what happens when Ray is not installed).
        address: a running Ray cluster to use instead of a local instance (``ray://host:10001``,
            ``host:6379`` or ``auto``); its workers must have fomm_kp installed.
        overwrite: redo sources whose outputs exist (default: skip them).
        max_retries: times Ray runs a task again when its worker process died.
        threads: torch threads per worker (and in this process when serial).
    """

    workers: int = 0
    address: str | None = None
    overwrite: bool = False
    max_retries: int = 3
    threads: int = 1

    def __post_init__(self) -> None:
        check(self, workers=integer(0), max_retries=integer(0), threads=integer(1))

    def resolved_workers(self) -> int:
        return self.workers if self.workers > 0 else max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Outcome:
    """What became of one source: ``status``, the frames processed, seconds spent, the error line if failed."""

    source: Path
    status: Status
    frames: int = 0
    seconds: float = 0.0
    error: str = ""


def one_line(exc: BaseException) -> str:
    """An exception as one line: FommError messages as they are, others with their type."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, FommError) else f"{type(exc).__name__}: {text}"


def run_one(job: Job, source: Path, threads: int) -> Outcome:
    """Run ``job`` on ``source`` here (in a Ray worker or in this process); an error becomes a failed
    :class:`Outcome` (Ctrl-C and a dying process are not caught)."""
    torch.set_num_threads(threads)
    started = time.monotonic()
    for output in job.outputs(source):
        for leftover in leftover_temporaries(output):  # from a worker killed while writing
            leftover.unlink(missing_ok=True)
    try:
        frames = job.run(source)
    except Exception as exc:  # one source's failure is reported, the others go on
        return Outcome(source, "failed", 0, time.monotonic() - started, one_line(exc))
    return Outcome(source, "done", int(frames), time.monotonic() - started)


OnOutcome = Callable[[Outcome], None]
