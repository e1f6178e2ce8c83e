"""What the many-video commands share: their options, one progress bar across the videos, and the
summary table (done, skipped, failed, frames/s) at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import typer
from rich.table import Table

from fomm_kp.cli.app import console, progress_bar, results
from fomm_kp.distributed import Job, RunOptions, RunSummary, run_many
from fomm_kp.errors import FommError

__all__ = ["WORKERS", "RAY_ADDRESS", "OVERWRITE", "run_options", "run_with_progress"]

WORKERS = typer.Option(0, "--workers", min=0, help="Several videos: Ray worker processes, one torch thread each "
                       "(0: one per CPU core; 1: one video after another in this process, as without Ray).")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="Several videos: run them on this Ray cluster "
                           "(host:6379, ray://host:10001 or auto) instead of a local Ray instance.")
OVERWRITE = typer.Option(False, "--overwrite", help="Several videos: redo those whose outputs exist (default: skip them).")


def run_options(workers: int, ray_address: Optional[str], overwrite: bool) -> RunOptions:
    return RunOptions(workers=workers, address=ray_address, overwrite=overwrite)


def _table(summary: RunSummary, stage: str) -> Table:
    table = Table(title=f"{stage}: {len(summary.outcomes)} sources, {summary.seconds:.1f} s ({summary.engine})")
    for column, justify in (("status", "left"), ("sources", "right"), ("frames", "right"), ("frames/s", "right")):
        table.add_column(column, justify=justify)
    for status in ("done", "skipped", "failed"):
        chosen = [o for o in summary.outcomes if o.status == status]
        frames = sum(o.frames for o in chosen)
        seconds = sum(o.seconds for o in chosen)
        rate = f"{frames / seconds:.1f}" if status == "done" and seconds > 0 else ""
        table.add_row(status, str(len(chosen)), str(frames) if status == "done" else "", rate)
    table.add_row("all (wall time)", str(len(summary.outcomes)), str(summary.frames), f"{summary.frames_per_second:.1f}")
    return table


def _refuse_replacing_inputs(sources: Sequence[Path], job: Job, inputs: Sequence[Path]) -> None:
    read = {Path(p).resolve(): Path(p) for p in [*sources, *inputs] if p is not None}
    for source in sources:
        for out in job.outputs(source):
            if out.resolve() in read:
                raise FommError(f"the output {out} of {source} would replace the input {read[out.resolve()]}: "
                                "choose another output folder")


def run_with_progress(sources: Sequence[Path], job: Job, options: RunOptions, inputs: Sequence[Path] = ()) -> RunSummary:
    """Run ``job`` on every source under one progress bar, print the summary table (stdout) and one
    ``error: SOURCE: message`` line per failed source (stderr); exit status 2 when any failed.

    ``inputs`` are the other files the job reads (a checkpoint, a classifier): no output may replace one.
    """
    _refuse_replacing_inputs(sources, job, inputs)
    with progress_bar(job.stage) as update:
        summary = run_many(sources, job, options, progress=update)
    results.print(_table(summary, job.stage))
    for outcome in summary.failed:
        console.print(f"error: {outcome.source}: {outcome.error}", markup=False, highlight=False, soft_wrap=True)
    if summary.failed:
        raise typer.Exit(2)
    return summary
