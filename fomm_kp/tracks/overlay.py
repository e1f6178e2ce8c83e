"""Tracks drawn onto the frames of their video (keypoints and short fading trails)."""

from __future__ import annotations

import os
from pathlib import Path

from fomm_kp.errors import FommError
from fomm_kp.tracks.core import Tracks
from fomm_kp.video import iter_frames
from fomm_kp.viz import TrailOverlay

__all__ = ["write_overlay"]


def write_overlay(tracks: Tracks, video: str | os.PathLike, path: str | os.PathLike, trail: int = 12) -> Path:
    """Write ``path`` (.mp4/.gif): the frames of ``video`` listed in ``tracks.frame_indices`` with the
    first subject's keypoints and trails. Nothing is left at ``path`` unless it completes."""
    rows = {int(index): row for row, index in enumerate(tracks.frame_indices)}
    if not rows:
        raise FommError("no frames to draw")
    stride = int(tracks.frame_indices[1] - tracks.frame_indices[0]) if tracks.num_frames > 1 else 1
    overlay = TrailOverlay(path, tracks.fps / max(stride, 1), tracks.num_keypoints, trail)
    try:
        for index, frame in iter_frames(video, start=min(rows), stop=max(rows) + 1):
            if index in rows:
                overlay.add(frame, tracks.keypoints[rows[index], 0])
    except BaseException:
        overlay.close(success=False)
        raise
    overlay.close()
    return Path(path)
