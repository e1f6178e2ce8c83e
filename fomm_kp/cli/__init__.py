"""``fomm-kp`` command line: a thin layer over :mod:`fomm_kp`'s Python API.

Every user-facing failure (:class:`fomm_kp.errors.FommError`, and what the file system refuses)
becomes one ``error: ...`` line on stderr and exit status 2 (Ctrl-C: 130; anything unforeseen: one
line and status 1, the traceback with ``FOMM_KP_TRACEBACK=1``). Log lines are held back until the
command's inputs are checked and its work begins (:class:`fomm_kp.cli.app.LogGate`), so a refused
input gives that one line alone. Progress bars are drawn here, never in the library.
"""

from __future__ import annotations

import os
import sys

# Command modules register themselves on ``app`` when imported.
from fomm_kp.cli import animate  # noqa: F401,E402
from fomm_kp.cli import behaviour  # noqa: F401,E402
from fomm_kp.cli import deploy  # noqa: F401,E402
from fomm_kp.cli import evaluate  # noqa: F401,E402
from fomm_kp.cli import interactions  # noqa: F401,E402
from fomm_kp.cli import train_track  # noqa: F401,E402
from fomm_kp.cli.app import LogGate, app, gated_logging
from fomm_kp.errors import FommError, Interrupted

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``fomm-kp`` script."""
    with gated_logging() as gate:
        code = _run(gate)
    if code not in (None, 0):
        sys.exit(code)


def _fail(gate: LogGate, message: str, code: int) -> int:
    """Drop the log lines held back (the inputs were refused before any work), write one error line."""
    gate.discard()
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return code


def _run(gate: LogGate) -> int | None:
    try:
        code = app(standalone_mode=False)
    except Interrupted as exc:
        return _fail(gate, exc.message, 130)
    except FommError as exc:
        return _fail(gate, str(exc), 2)
    except KeyboardInterrupt:
        return _fail(gate, "interrupted", 130)
    except SystemExit:
        raise
    except OSError as exc:  # the file system refused: read-only, full, gone, a folder where a file goes
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(gate, f"{where}{exc.strerror or exc}", 2)
    except Exception as exc:  # click's usage errors and the like
        # Recent typer releases bundle their own copy of click (typer._click), whose exceptions are
        # not click's: recognise them by name and shape rather than by class.
        if type(exc).__name__ == "Abort":
            return _fail(gate, "interrupted", 130)
        format_message = getattr(exc, "format_message", None)
        if callable(format_message):
            message = " ".join(str(format_message()).split())
            if not message:  # empty when the help was already shown (no arguments given)
                return getattr(exc, "exit_code", None) or 2
            return _fail(gate, message, getattr(exc, "exit_code", None) or 2)
        if os.environ.get("FOMM_KP_TRACEBACK"):
            raise
        return _fail(gate, f"unexpected {type(exc).__name__}: {exc} (this is a bug in fomm_kp; "
                           "set FOMM_KP_TRACEBACK=1 to see where)", 1)
    # Under standalone_mode=False typer turns Ctrl-C (and typer.Exit) into a returned exit status.
    if code == 130:
        return _fail(gate, "interrupted", 130)
    gate.let_through()
    return code
