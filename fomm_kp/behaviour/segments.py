"""Labelled segments of videos: ``video,start_frame,end_frame,label`` (end frame inclusive), and the
labels they give to windows."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.files import read_text

__all__ = ["Segment", "read_segments", "video_key", "window_labels"]


@dataclass(frozen=True)
class Segment:
    """One labelled stretch of a video: frames ``start_frame..end_frame`` (both inclusive)."""

    video: str
    start_frame: int
    end_frame: int
    label: str

    def __post_init__(self) -> None:
        if self.end_frame < self.start_frame or self.start_frame < 0:
            raise FommError(f"bad segment {self.video}:{self.start_frame}-{self.end_frame} ({self.label})")
        if not str(self.label):
            raise FommError(f"segment {self.video}:{self.start_frame}-{self.end_frame} has an empty label")


def read_segments(path: str | os.PathLike) -> list[Segment]:
    """Read a labels CSV with columns ``video,start_frame,end_frame,label`` (end inclusive)."""
    path = Path(path)
    if not path.is_file():
        raise FommError(f"labels file not found: {path}")
    segments = []
    with io.StringIO(read_text(path, "labels CSV"), newline="") as fh:
        reader = csv.DictReader(fh)
        needed = {"video", "start_frame", "end_frame", "label"}
        if reader.fieldnames is None or not needed <= set(reader.fieldnames):
            raise FommError(f"{path} must have columns video,start_frame,end_frame,label (has {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            try:
                start, end = int(row["start_frame"]), int(row["end_frame"])
            except ValueError as exc:
                raise FommError(f"{path} line {line}: frames must be integers ({exc})") from exc
            segments.append(Segment(row["video"].strip(), start, end, row["label"].strip()))
    if not segments:
        raise FommError(f"{path} holds no labelled segments")
    return segments


def video_key(name: str) -> str:
    """Videos are matched by file name without extension."""
    return Path(str(name)).stem


def window_labels(starts: np.ndarray, ends: np.ndarray, segments: Sequence[Segment]) -> np.ndarray:
    """Label of each window ``[starts, ends)`` from segments of ONE video ("" = unlabelled).

    A window takes a segment's label when at least half of its span lies in segments of that label.
    """
    starts, ends = np.asarray(starts), np.asarray(ends)
    out = np.full(len(starts), "", dtype=object)
    if not segments:
        return out
    labels = sorted({s.label for s in segments})
    cover = np.zeros((len(starts), len(labels)))
    for s in segments:
        overlap = np.clip(np.minimum(ends, s.end_frame + 1) - np.maximum(starts, s.start_frame), 0, None)
        cover[:, labels.index(s.label)] += overlap
    frac = cover / (ends - starts)[:, None]
    best = np.argmax(frac, axis=1)
    ok = frac[np.arange(len(starts)), best] >= 0.5
    out[ok] = np.asarray(labels, dtype=object)[best[ok]]
    return out
