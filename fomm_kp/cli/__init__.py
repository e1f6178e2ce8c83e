"""``fomm-kp`` command line: a thin layer over :mod:`fomm_kp`'s Python API.

Every user-facing failure (:class:`fomm_kp.errors.FommError`) becomes one ``error: ...`` line on
stderr and exit status 2; progress bars are drawn here, never in the library.
"""

from __future__ import annotations

import logging
import sys

# Command modules register themselves on ``app`` when imported.
from fomm_kp.cli import animate  # noqa: F401,E402
from fomm_kp.cli import behaviour  # noqa: F401,E402
from fomm_kp.cli import deploy  # noqa: F401,E402
from fomm_kp.cli import evaluate  # noqa: F401,E402
from fomm_kp.cli import interactions  # noqa: F401,E402
from fomm_kp.cli import train_track  # noqa: F401,E402
from fomm_kp.cli.app import app
from fomm_kp.errors import FommError, Interrupted

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``fomm-kp`` script."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = app(standalone_mode=False)
    except Interrupted as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(130)
    except FommError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click's usage errors and the like
        # Recent typer releases bundle their own copy of click (typer._click), whose exceptions are
        # not click's: recognise them by name and shape rather than by class.
        if type(exc).__name__ == "Abort":
            print("error: aborted", file=sys.stderr)
            sys.exit(130)
        format_message = getattr(exc, "format_message", None)
        if callable(format_message):
            message = " ".join(str(format_message()).split())
            if message:  # empty when the help was already shown (no arguments given)
                print(f"error: {message}", file=sys.stderr)
            sys.exit(getattr(exc, "exit_code", None) or 2)
        raise
    # Under standalone_mode=False typer turns Ctrl-C (and typer.Exit) into a returned exit status.
    if code == 130:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    if isinstance(code, int) and code != 0:
        sys.exit(code)
