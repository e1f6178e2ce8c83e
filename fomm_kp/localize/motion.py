"""Where the frame changes: a fixed box around the moving parts of a whole-frame subject.

When no single subject stands out (a head-fixed mouse whose paw reaches, a talking face, a dancer),
localisation leaves the whole frame, where a small moving part is a few pixels wide after resizing.
The change of the sampled frames from their median (the static scene) says where things move: a
still head or arena is left out, a reaching paw or a walking animal's range is in. Cropping to that
region gives the moving parts more of the detector's pixels.
"""

from __future__ import annotations

import numpy as np

from fomm_kp.config import LocalizeConfig
from fomm_kp.localize.background import Background

__all__ = ["motion_region"]


def _span(profile: np.ndarray, tail: float) -> tuple[float, float]:
    """Where the central ``1 - 2·tail`` of a non-negative profile's mass lies (cell units)."""
    cumulative = np.cumsum(profile) / profile.sum()
    return float(np.searchsorted(cumulative, tail)), float(np.searchsorted(cumulative, 1.0 - tail) + 1)


def motion_region(background: Background, config: LocalizeConfig = LocalizeConfig()) -> np.ndarray | None:
    """A box ``x0, y0, x1, y1`` (frame pixels) around where the sampled frames differ from their
    median, or None when the change is spread over most of the frame or nothing changes.

    The box holds the central ``motion_mass`` of the change along x and along y, widened by
    ``motion_margin`` (sides at most 2:1), and is returned only when it covers at most
    ``motion_max_area`` of the frame.
    """
    if background.samples is None or len(background.samples) < 3:
        return None
    change = np.abs(background.samples - background.image[None]).mean(axis=(0, 3))
    change = np.clip(change - np.median(change), 0.0, None)
    if change.sum() <= 0:
        return None
    tail = (1.0 - config.motion_mass) / 2.0
    (x0, x1), (y0, y1) = _span(change.sum(axis=0), tail), _span(change.sum(axis=1), tail)
    f, frame_w, frame_h = background.factor, background.frame_width, background.frame_height
    width, height = (x1 - x0) * f * config.motion_margin, (y1 - y0) * f * config.motion_margin
    width, height = max(width, height / 2.0, 16.0), max(height, width / 2.0, 16.0)
    width, height = min(width, frame_w), min(height, frame_h)
    if width * height > config.motion_max_area * frame_w * frame_h:
        return None
    cx = float(np.clip((x0 + x1) / 2.0 * f, width / 2.0, frame_w - width / 2.0))
    cy = float(np.clip((y0 + y1) / 2.0 * f, height / 2.0, frame_h - height / 2.0))
    return np.array([cx - width / 2.0, cy - height / 2.0, cx + width / 2.0, cy + height / 2.0])
