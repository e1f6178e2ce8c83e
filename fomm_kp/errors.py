"""The one exception type the CLI turns into a single clear error line."""

from __future__ import annotations


class FommError(Exception):
    """A user-facing error: bad input, missing file, unusable video or config.

    The message is one line that says what is wrong and, where possible, what to do.
    """
