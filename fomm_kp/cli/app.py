"""The typer application objects that command modules register on.

Kept apart from ``fomm_kp.cli.__init__`` so that each command module can import ``app`` without
import cycles. Commands stay thin: parse options, call one API function, report.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="fomm-kp",
    help="Self-supervised keypoints from one video: train, track, classify behaviour, animate, deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
evaluate_app = typer.Typer(help="Measure reconstruction, keypoint accuracy and behaviour accuracy.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")
