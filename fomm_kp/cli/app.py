"""The typer application objects that command modules register on.

Kept apart from ``fomm_kp.cli.__init__`` so that each command module can import ``app`` without
import cycles. Commands stay thin: parse options, call one API function, report.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

app = typer.Typer(
    name="fomm-kp",
    help="Self-supervised keypoints from one video: train, track, classify behaviour, animate, deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
evaluate_app = typer.Typer(help="Measure reconstruction, keypoint accuracy and behaviour accuracy.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")

# Progress and messages go to stderr, so stdout stays clean for results.
console = Console(stderr=True)


def progress_bar(transient: bool = False) -> Progress:
    """The CLI's progress bar: description, bar, n/total, a free ``info`` field (pass ``info=`` to
    ``add_task``), elapsed and remaining time."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=transient,
    )
