"""``fomm-kp`` command line: a thin layer over :mod:`fomm_kp`'s Python API.

Every user-facing failure (:class:`fomm_kp.errors.FommError`) becomes one ``error: ...`` line on
stderr and exit status 2; progress bars are drawn here, never in the library.
"""

from __future__ import annotations

import logging
import sys

from fomm_kp.cli.app import app
from fomm_kp.errors import FommError

# Command modules register themselves on ``app`` when imported.
from fomm_kp.cli import spine  # noqa: F401,E402
from fomm_kp.cli import animate  # noqa: F401,E402
from fomm_kp.cli import evaluate_keypoints  # noqa: F401,E402

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``fomm-kp`` script."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(standalone_mode=False)
    except FommError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click's usage errors and the like
        import click

        if isinstance(exc, click.exceptions.Abort):
            print("error: aborted", file=sys.stderr)
            sys.exit(130)
        if isinstance(exc, click.ClickException):
            print(f"error: {exc.format_message()}", file=sys.stderr)
            sys.exit(exc.exit_code or 2)
        raise
