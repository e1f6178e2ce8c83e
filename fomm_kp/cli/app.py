"""The typer application objects that command modules register on, and the two output streams.

Kept apart from ``fomm_kp.cli.__init__`` so that each command module can import ``app`` without
import cycles. Commands stay thin: parse options, call one API function, report. Results (tables,
reports) go to stdout (``results``); progress bars and messages go to stderr (``console``), so that
stdout stays clean for results.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fomm_kp.progress import Update

__all__ = ["app", "evaluate_app", "console", "results", "progress_bar"]

app = typer.Typer(
    name="fomm-kp",
    help="Self-supervised keypoints from one video: train, track, classify behaviour, animate, deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
evaluate_app = typer.Typer(help="Measure reconstruction, keypoint accuracy and behaviour accuracy.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")

console = Console(stderr=True)  # progress and messages
results = Console(soft_wrap=True)  # tables and reports


def _loss_text(losses: Mapping[str, float]) -> str:
    if not losses:
        return ""
    detail = next((f" ({short} {losses[name]:.4f})" for name, short in (("reconstruction", "rec"), ("keypoints", "kp"))
                   if name in losses), "")
    return f"loss {losses.get('total', float('nan')):.4f}{detail}"


@contextlib.contextmanager
def progress_bar(description: str, transient: bool = False) -> Iterator:
    """A progress bar on stderr; yields the callback (:data:`fomm_kp.progress.Progress`) that moves it.

    The bar shows the update's stage (else ``description``), n/total, smoothed losses when there are
    any, elapsed and remaining time."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=transient) as bar:
        task = bar.add_task(description, total=None, info="")

        def update(step: Update) -> None:
            bar.update(task, completed=step.done, total=step.total, description=step.stage or description,
                       info=_loss_text(step.losses))

        yield update
