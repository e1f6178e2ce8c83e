"""One job over many videos: :func:`run_many`, on Ray or one after another in this process.

A :class:`Job` says which files a source's result goes to (``outputs``) and makes them (``run``,
writing each output atomically). :func:`run_many` skips the sources whose outputs all exist (unless
``overwrite``), runs the others as Ray tasks (a local Ray instance with ``workers`` processes, or the
cluster at ``address``) or, without Ray or with one worker, in this process, and returns a
:class:`RunSummary`: one :class:`Outcome` per source (done, skipped or failed with its one-line
error) and the frames per second over the whole run. A source that fails does not stop the others;
a Ray worker that dies (killed, out of memory) has its task run again, up to ``max_retries`` times.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from fomm_kp.distributed.ray_tasks import run_on_ray
from fomm_kp.distributed.work import Job, Outcome, RunOptions, run_one
from fomm_kp.errors import FommError
from fomm_kp.optional import available
from fomm_kp.progress import Progress, report

__all__ = ["RunSummary", "run_many"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """All outcomes (in the order of the sources), the wall time and where it ran."""

    outcomes: tuple[Outcome, ...]
    seconds: float
    engine: str
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        counts = {status: sum(o.status == status for o in self.outcomes) for status in ("done", "skipped", "failed")}
        object.__setattr__(self, "counts", counts)

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")

    @property
    def frames(self) -> int:
        return sum(o.frames for o in self.outcomes)

    @property
    def frames_per_second(self) -> float:
        """Frames processed over the wall time of the whole run (start-up included)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _finished(job: Job, source: Path) -> bool:
    return all(path.is_file() for path in job.outputs(source))


def _engine(options: RunOptions, count: int) -> str:
    """``serial`` or ``ray``: Ray when asked for (an address, or more than one worker) and installed."""
    if options.address is not None:
        if not available("ray"):
            raise FommError('--ray-address needs the optional package \'ray\': pip install "fomm_kp[ray]"')
        return "ray"
    if options.resolved_workers() == 1 or count <= 1:
        return "serial"
    if not available("ray"):
        log.warning('Ray is not installed (pip install "fomm_kp[ray]"): running %d sources one after another', count)
        return "serial"
    return "ray"


def run_many(sources: Sequence[Path], job: Job, options: RunOptions = RunOptions(),
             progress: Progress | None = None) -> RunSummary:
    """Run ``job`` on every source; returns what became of each (see the module's docstring).

    ``progress`` hears after each source (its name is the update's stage).
    """
    started = time.monotonic()
    sources = [Path(s) for s in sources]
    outcomes: dict[Path, Outcome] = {}
    todo = []
    for source in sources:
        if not options.overwrite and _finished(job, source):
            outcomes[source] = Outcome(source, "skipped")
        else:
            todo.append(source)
    count = len(outcomes)
    report(progress, count, len(sources), job.stage)

    def finished(outcome: Outcome) -> None:
        nonlocal count
        outcomes[outcome.source] = outcome
        count += 1
        if outcome.status == "failed":
            log.info("failed: %s: %s", outcome.source, outcome.error)
        report(progress, count, len(sources), outcome.source.name)

    engine = _engine(options, len(todo)) if todo else "serial"
    if engine == "ray":
        description = run_on_ray(job, todo, options, finished)
    else:
        description = "in this process"
        for source in todo:
            finished(run_one(job, source, options.threads))
    summary = RunSummary(tuple(outcomes[s] for s in sources), time.monotonic() - started, description)
    log.info("%s: %d done, %d skipped, %d failed (%s)", job.stage, summary.counts["done"], summary.counts["skipped"],
             summary.counts["failed"], description)
    return summary

