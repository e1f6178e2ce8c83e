"""The typer application objects that command modules register on, and the two output streams.

Kept apart from ``fomm_kp.cli.__init__`` so that each command module can import ``app`` without
import cycles. Commands stay thin: parse options, call one API function, report. Results (tables,
reports) go to stdout (``results``); progress bars and messages go to stderr (``console``), so that
stdout stays clean for results.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator, Mapping

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fomm_kp.progress import Update

__all__ = ["app", "evaluate_app", "console", "results", "progress_bar", "working", "LogGate", "gated_logging",
           "begin_work"]

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


class LogGate(logging.Handler):
    """Log lines on stderr, held back until the command's work begins (:func:`begin_work`).

    A command checks its inputs first; what the library logs meanwhile (the device chosen, a
    backend picked) is written once the work begins or the command succeeds, and dropped when an
    input is refused, so that a refusal is one ``error:`` line and nothing else."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.held: list[logging.LogRecord] = []
        self.passing = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.passing:
            self.held.append(record)
            return
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # pragma: no cover - a closed stderr
            self.handleError(record)

    def let_through(self) -> None:
        """Write what was held and let later lines through."""
        self.passing = True
        held, self.held = self.held, []
        for record in held:
            self.emit(record)

    def discard(self) -> None:
        self.held = []


@contextlib.contextmanager
def gated_logging() -> Iterator[LogGate]:
    """INFO logging to stderr through a :class:`LogGate` (and Python warnings with it) for one command."""
    root = logging.getLogger()
    gate, level = LogGate(), root.level
    root.addHandler(gate)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield gate
    finally:
        logging.captureWarnings(False)
        root.removeHandler(gate)
        root.setLevel(level)


def begin_work() -> None:
    """The inputs are checked and the work begins: log lines held so far are written, later ones at once."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, LogGate):
            handler.let_through()


@contextlib.contextmanager
def working(description: str) -> Iterator[None]:
    """A spinner on stderr (terminals only) for work without steps; the work begins (:func:`begin_work`)."""
    begin_work()
    if not console.is_terminal:
        yield
        return
    with console.status(description):
        yield


@contextlib.contextmanager
def progress_bar(description: str, transient: bool = False) -> Iterator:
    """A progress bar on stderr; yields the callback (:data:`fomm_kp.progress.Progress`) that moves it.

    The bar shows the update's stage (else ``description``), n/total, smoothed losses when there are
    any, elapsed and remaining time. It is drawn on terminals only (elsewhere the log lines tell the
    progress), and removed when the work fails, so that the error line stands alone. The first update
    begins the work (:func:`begin_work`): what goes wrong while the job still reads and checks its
    inputs is one error line, without the log lines held until then."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=transient, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=None, info="")

        def update(step: Update) -> None:
            begin_work()
            bar.update(task, completed=step.done, total=step.total, description=step.stage or description,
                       info=_loss_text(step.losses))

        try:
            yield update
        except BaseException:
            bar.live.transient = True
            raise
