"""What a live run reports: one JSON object per line, written whole and flushed as it happens.

Lines (``t``: seconds on the stream's clock, ``frame``: the frame number):

- a frame: ``{"t", "frame", "keypoints": [[x, y], ...], "scores": [...]}`` (keypoints in frame
  pixels, ``null`` where the subject was not found), with ``"skipped": n`` when n frames before it
  were not processed (dropped to keep up, or lost on the way);
- a label, every stride: ``{"t", "frame", "window": [start, end], "labels": [["reach", 0.91], ...],
  "keypoints": ...}`` (the window's frames, its labels most probable first, the newest keypoints;
  ``"labels": []`` when no frame of the window had the subject);
- a bout: ``{"t", "frame", "bout": {"state": "open"|"close", "label", "start", "end"}}``;
- a gap: ``{"t", "frame", "gap": {"frames", "seconds", "reason": "lost"|"reconnect"}}``;
- the last line: ``{"t", "frame", "end": reason, "frames", "dropped", "lost"}``.

Each line is written with one call and flushed, so a reader following the file (or a process that is
killed) only ever sees complete lines.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from pathlib import Path
from typing import IO, Any

import numpy as np

from fomm_kp.errors import FommError

__all__ = ["EventWriter", "points_as_lists"]


def points_as_lists(values: np.ndarray, decimals: int = 3) -> list:
    """Nested lists of rounded numbers, ``None`` for NaN (JSON has no NaN)."""
    array = np.round(np.asarray(values, dtype=np.float64), decimals)
    return [points_as_lists(row, decimals) for row in array] if array.ndim > 1 else [
        None if not math.isfinite(v) else float(v) for v in array.tolist()]


class EventWriter:
    """Writes events as JSON lines to ``path`` (None: stdout); :meth:`close` when done."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.lines = 0
        self._lock = threading.Lock()  # the label worker writes too
        if self.path is None:
            self._stream: IO[str] = sys.stdout
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._stream = open(self.path, "w", encoding="utf-8")
            except OSError as exc:
                raise FommError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def write(self, t: float, frame: int, **fields: Any) -> None:
        line = json.dumps({"t": round(float(t), 4), "frame": int(frame), **fields}, allow_nan=False)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
            self.lines += 1

    def close(self) -> None:
        with self._lock:
            if self.path is not None and not self._stream.closed:
                self._stream.close()
