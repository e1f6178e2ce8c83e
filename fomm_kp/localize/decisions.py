"""Whether a video needs localisation (``localize: auto``), and whether crops turn to the heading
(``align: auto``): the automatic decisions, and why."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fomm_kp.config import LocalizeConfig
from fomm_kp.errors import FommError
from fomm_kp.localize.background import Background, estimate_background, sample_reduced
from fomm_kp.localize.blobs import Blob, find_in_reduced
from fomm_kp.localize.boxes import SubjectBoxes, box_side

__all__ = ["LocalizeDecision", "decide_from_blobs", "decide", "should_align"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalizeDecision:
    """Whether to crop around the subject, and why.

    Attributes:
        use: True when the subject is small and reliably found.
        reason: one line for the log / CLI.
        area_fraction: median subject area over the frame area, where found (NaN if never found).
        found_fraction: share of sampled frames where a subject was found.
        side: the box side localisation would use (pixels; 0 if never found).
        dominance: median share of the foreground mass held by the subject (0 if never found).
        distinct: one distinct subject stands out alone in most sampled frames (whatever its size):
            the foreground is then the subject, not a few moving parts of it or several animals.
    """

    use: bool
    reason: str
    area_fraction: float
    found_fraction: float
    side: int
    dominance: float
    distinct: bool = False


def decide_from_blobs(
    blobs: Sequence[Blob | None], width: int, height: int, config: LocalizeConfig = LocalizeConfig()
) -> LocalizeDecision:
    """The rule behind :func:`decide`, on detections from sampled frames of a ``width`` × ``height``
    video. On when one distinct subject is found in most frames (``min_found_fraction``), stands
    out alone (median dominance ≥ ``min_dominance``) and is small (median area ≤
    ``max_area_fraction`` of the frame, box side ≤ ``max_side_fraction`` of its shorter side)."""
    found = [b for b in blobs if b is not None]
    found_fraction = len(found) / max(len(blobs), 1)
    if not found:
        return LocalizeDecision(False, "no subject distinct from the background was found", float("nan"), 0.0, 0, 0.0,
                                False)
    area_fraction = float(np.median([b.area for b in found])) / float(width * height)
    dominance = float(np.median([b.dominance for b in found]))
    side = box_side(np.array([b.major_length for b in found]), width, height, config)
    if found_fraction < config.min_found_fraction:
        use, reason = False, f"a subject was found in only {found_fraction:.0%} of sampled frames"
    elif dominance < config.min_dominance:
        use, reason = False, (
            f"no single subject stands out (largest moving part holds {dominance:.0%} of the change: "
            "a whole-frame subject, flames or several animals)"
        )
    elif area_fraction > config.max_area_fraction:
        use, reason = False, f"the subject covers {area_fraction:.1%} of the frame (whole-frame subject)"
    elif side > config.max_side_fraction * min(width, height):
        use, reason = False, f"a box around the subject ({side} px) would cover most of the frame"
    else:
        use, reason = True, (
            f"small subject ({area_fraction:.1%} of the frame, box {side} px, found in {found_fraction:.0%} "
            "of sampled frames)"
        )
    distinct = found_fraction >= config.min_found_fraction and dominance >= config.min_dominance
    return LocalizeDecision(use, reason, area_fraction, found_fraction, side, dominance, distinct)


def decide(
    path: str | os.PathLike, config: LocalizeConfig = LocalizeConfig(), background: Background | None = None
) -> LocalizeDecision:
    """Whether a video needs subject localisation (see :func:`decide_from_blobs`), judged on
    ``config.background_samples`` frames spread over it: on for a small animal in a large static
    arena; off for whole-frame subjects (faces, fire, a bird filling the frame), several animals,
    and when nothing distinct moves."""
    if background is None:
        background = estimate_background(path, config)
    if background.samples is not None and background.source == str(path):
        samples = list(background.samples)
        width, height = background.frame_width, background.frame_height
    else:
        samples, factor, width, height = sample_reduced(path, config, config.background_samples)
        if (background.frame_width, background.frame_height, background.factor) != (width, height, factor):
            raise FommError(f"the background does not fit {path} ({width}x{height}, reduction {factor})")
    blobs = [find_in_reduced(sample, background, config) for sample in samples]
    decision = decide_from_blobs(blobs, width, height, config)
    log.info("localisation %s for %s: %s", "on" if decision.use else "off", path, decision.reason)
    return decision


def should_align(located: SubjectBoxes, setting: str, config: LocalizeConfig = LocalizeConfig()) -> bool:
    """Resolve an ``align`` setting (``on``/``off``/``auto``) for boxes found in a video: ``auto``
    turns crops to the heading when the subject was found and is elongated enough to have one."""
    if setting not in ("auto", "on", "off"):
        raise FommError(f"align must be auto, on or off, got {setting!r}")
    if setting != "auto":
        return setting == "on"
    return bool(located.found.any()) and located.elongation >= config.align_min_elongation
