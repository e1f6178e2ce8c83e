"""The exception types the CLI turns into a single clear line on stderr."""

from __future__ import annotations


class FommError(Exception):
    """A user-facing error: bad input, missing file, unusable video or config.

    The message is one line that says what is wrong and, where possible, what to do.
    """


class Interrupted(Exception):
    """Ctrl-C, after the work in hand was put somewhere safe; the message says where (one line).

    Not a :class:`KeyboardInterrupt`, so that it reaches the CLI's ``main`` with its message (typer
    turns a KeyboardInterrupt into a bare exit status)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
