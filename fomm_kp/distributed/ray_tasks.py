"""Sources as Ray tasks: a local Ray instance (or a cluster), one task per source, results as they come.

Ray is an optional dependency (``pip install "fomm_kp[ray]"``), imported only here and only when
used. A Ray instance this module starts is shut down when the run ends, also on Ctrl-C (after the
tasks still running were cancelled); a Ray connection that already existed (a caller's
``ray.init``) is used and left alone. Ray's own log lines stay off stdout: the driver logs errors
only, to stderr, the workers' output is not forwarded, and what Ray's driver threads print goes to
stderr while the tasks run.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from fomm_kp.distributed.work import Job, OnOutcome, Outcome, RunOptions, run_one
from fomm_kp.errors import FommError
from fomm_kp.optional import require

__all__ = ["run_on_ray"]

log = logging.getLogger(__name__)

WAIT_SECONDS = 0.5  # ray.wait in short slices, so that Ctrl-C is seen at once
OBJECT_STORE_BYTES = 128 * 1024**2  # results are small: no need for Ray's default 30% of memory


def _connect(ray: Any, options: RunOptions) -> str:
    """Start a local Ray instance or join the cluster at ``options.address``; returns where tasks run."""
    common = {"log_to_driver": False, "logging_level": logging.ERROR, "include_dashboard": False}
    try:
        if options.address is not None:
            ray.init(address=options.address, **common)
            return f"Ray cluster at {options.address}"
        workers = options.resolved_workers()
        ray.init(num_cpus=workers, num_gpus=0, object_store_memory=OBJECT_STORE_BYTES, _node_ip_address="127.0.0.1",
                 **common)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError, ... of its own
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        where = f"the Ray cluster at {options.address}" if options.address is not None else "a local Ray instance"
        raise FommError(f"cannot start or reach {where}: {first}") from None
    return f"local Ray instance, {workers} workers"


def _failure(ray: Any, source: Path, exc: Exception) -> Outcome:
    """A task that Ray itself could not finish (its worker died more often than retried, ...)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, ray.exceptions.WorkerCrashedError):
        first = "the worker process died (after every retry)"
    return Outcome(source, "failed", error=f"{type(exc).__name__}: {first}")


def run_on_ray(job: Job, sources: Sequence[Path], options: RunOptions, finished: OnOutcome) -> str:
    """Run ``job`` on each source as a Ray task; ``finished`` hears each outcome as it arrives.

    Returns where the tasks ran. A task whose worker process died is run again up to
    ``options.max_retries`` times; errors of the job itself are outcomes, never retried. While Ray
    runs, whatever its driver threads print (the raylet's messages about dead workers go to stdout)
    is sent to stderr: stdout is for the command's results.
    """
    ray = require("ray", "running many videos on Ray")
    with contextlib.redirect_stdout(sys.stderr):
        if ray.is_initialized():  # the caller's Ray: use it, leave it running
            _run_tasks(ray, job, sources, options, finished)
            return "Ray (connection already open)"
        try:
            where = _connect(ray, options)
            _run_tasks(ray, job, sources, options, finished)
        finally:  # also after Ctrl-C, or a failure half-way through starting
            ray.shutdown()
    return where


def _run_tasks(ray: Any, job: Job, sources: Sequence[Path], options: RunOptions, finished: OnOutcome) -> None:
    log.info("%s: %d tasks", job.stage, len(sources))
    task = ray.remote(num_cpus=1, max_retries=options.max_retries, retry_exceptions=False)(run_one)
    pending: dict[Any, Path] = {}
    try:
        pending = {task.remote(job, source, options.threads): source for source in sources}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
            for ref in ready:
                source = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    outcome = _failure(ray, source, exc)
                finished(outcome)
    except BaseException:  # Ctrl-C (or a failing callback): stop what still runs
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
