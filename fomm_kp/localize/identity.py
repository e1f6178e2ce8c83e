"""Identities of several subjects over time: frame-to-frame assignment (Hungarian) of each frame's
detections to the subjects, on predicted positions, sizes and appearance.

Each subject keeps a constant-velocity prediction of where it will be, its typical area and
appearance. Every frame, the detections are assigned to the subjects that are being followed
(:func:`scipy.optimize.linear_sum_assignment` on a cost of distance to the prediction in body
lengths, size ratio and appearance difference, gated by a largest jump); a subject missed for up to
``IdentityConfig.max_gap`` frames keeps its prediction and its identity, one missed longer is lost
and may be taken up again by a detection that no followed subject claims (on size and appearance
alone). The identity confidence of a subject in a frame is how much costlier the cheapest
exchange of its detection with another subject's (or with an unassigned detection) would have been:
``1 - exp(-margin / IDENTITY_SCALE)``; 1 when nothing else was near.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from fomm_kp.config import IdentityConfig
from fomm_kp.errors import FommError
from fomm_kp.localize.blobs import Blob

__all__ = ["Candidate", "Assignment", "IdentityTracker", "appearance_distance", "IDENTITY_SCALE"]

IDENTITY_SCALE = 0.5  # cost margin (body lengths) at which the identity confidence reaches 1 - 1/e
_INFEASIBLE = 1e6
EXTRAPOLATE = 5  # frames a missed subject's prediction keeps moving; then it waits where it was heading


class Candidate(NamedTuple):
    """One detected subject in one frame: its blob (frame pixels), appearance ``(D,)`` (see
    :func:`appearance_distance`), whether it was cut out of a larger part (its area and appearance
    then say little about the subject), and a second heading cue (radians, NaN: none): the body
    axis pointed to where the subject differs most from the background."""

    blob: Blob
    appearance: np.ndarray
    split: bool = False
    contrast_heading: float = float("nan")


class Assignment(NamedTuple):
    """The subjects of one frame: ``detection`` int ``(N,)`` index into the frame's candidates (-1:
    not found) and ``confidence`` float ``(N,)`` identity confidence in [0, 1] (0 where not found)."""

    detection: np.ndarray
    confidence: np.ndarray


def appearance_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Difference of two appearances ``(3 + B,)``: mean colour (0–255) and a grey-level histogram of
    B bins summing to 1. Mean absolute colour difference / 64 plus the Hellinger distance of the
    histograms (0 … 1): about 1 for a black and a brown mouse, near 0 for two flies of a kind."""
    colour = float(np.abs(a[:3] - b[:3]).mean()) / 64.0
    hellinger = float(np.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(np.clip(a[3:], 0, None) * np.clip(b[3:], 0, None))))))
    return colour + hellinger


@dataclass
class _Subject:
    """What is known of one followed subject."""

    position: np.ndarray
    area: float
    appearance: np.ndarray
    last_seen: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))


class IdentityTracker:
    """Follows ``count`` subjects of typical major-axis length ``body_length`` (frame pixels) through
    the frames handed to :meth:`update` in order (``row`` 0, 1, 2, ...)."""

    def __init__(self, count: int, body_length: float, config: IdentityConfig = IdentityConfig()) -> None:
        if count < 1:
            raise FommError(f"cannot follow {count} subjects")
        if not np.isfinite(body_length) or body_length <= 0:
            raise FommError(f"body length must be a positive number of pixels, got {body_length}")
        self.count = int(count)
        self.body_length = float(body_length)
        self.config = config
        self.subjects: list[_Subject | None] = [None] * self.count

    def _followed(self, row: int) -> list[int]:
        return [n for n, s in enumerate(self.subjects) if s is not None and row - s.last_seen <= self.config.max_gap + 1]

    def predictions(self, row: int) -> np.ndarray:
        """Where each followed subject should be in frame ``row``: ``(N, 2)`` frame pixels, NaN for
        subjects not (or no longer) followed."""
        out = np.full((self.count, 2), np.nan)
        for n in self._followed(row):
            subject = self.subjects[n]
            out[n] = subject.position + subject.velocity * min(row - subject.last_seen, EXTRAPOLATE)
        return out

    def _cost(self, subject: _Subject, candidate: Candidate, predicted: np.ndarray | None) -> float:
        cfg = self.config
        size = abs(np.log2(max(candidate.blob.area, 1e-6) / max(subject.area, 1e-6)))
        if candidate.split:
            size *= 0.25  # a part cut from a merged blob has an unreliable area
        cost = cfg.size_weight * size + cfg.appearance_weight * appearance_distance(subject.appearance,
                                                                                    candidate.appearance)
        if predicted is not None:
            cost += float(np.linalg.norm(candidate.blob.centre - predicted)) / self.body_length
        return cost

    def _match_followed(self, row: int, candidates: Sequence[Candidate], followed: list[int],
                        ) -> tuple[dict[int, int], np.ndarray]:
        """Hungarian assignment of candidates to followed subjects, each of which may also stay
        unmatched (at the cost of the longest jump); a candidate is within a subject's reach up to
        ``max_jump × sqrt(frames since seen)`` body lengths from its prediction. Returns subject →
        candidate and the costs ``(F, C)``."""
        predicted = self.predictions(row)
        m = len(candidates)
        cost = np.full((len(followed), m + len(followed)), _INFEASIBLE)
        for i, n in enumerate(followed):
            gap = row - self.subjects[n].last_seen
            cost[i, m + i] = self.config.max_jump  # staying unmatched costs as much as the longest jump
            reach = self.config.max_jump * np.sqrt(max(gap, 1)) * self.body_length  # wider after misses
            for j, candidate in enumerate(candidates):
                if np.linalg.norm(candidate.blob.centre - predicted[n]) <= reach:
                    cost[i, j] = self._cost(self.subjects[n], candidate, predicted[n])
        matched = {}
        if cost.size:
            rows, cols = linear_sum_assignment(cost)
            matched = {followed[i]: int(j) for i, j in zip(rows, cols) if j < m and cost[i, j] < _INFEASIBLE}
        return matched, cost[:, :m]

    @staticmethod
    def _confidence(followed: list[int], matched: dict[int, int], cost: np.ndarray) -> dict[int, float]:
        """Per matched subject: 1 - exp(-margin), margin = the cheapest exchange's extra cost."""
        index = {n: i for i, n in enumerate(followed)}
        out = {}
        for n, j in matched.items():
            i = index[n]
            margins = [cost[i, other] - cost[i, j] for other in range(cost.shape[1])
                       if other != j and other not in matched.values()]
            for m, l in matched.items():
                if m != n:
                    k = index[m]
                    margins.append(cost[i, l] + cost[k, j] - cost[i, j] - cost[k, l])
            margin = min(margins) if margins else np.inf
            out[n] = float(1.0 - np.exp(-max(margin, 0.0) / IDENTITY_SCALE)) if np.isfinite(margin) else 1.0
        return out

    def _take_up(self, row: int, candidates: Sequence[Candidate], free: list[int]) -> dict[int, tuple[int, float]]:
        """Unclaimed candidates (largest first) start subjects never seen, or take up lost ones on
        size and appearance; returns subject → (candidate, confidence)."""
        idle = [n for n in range(self.count) if n not in self._followed(row)]
        if not idle or not free:
            return {}
        free = sorted(free, key=lambda j: -candidates[j].blob.area)
        fresh = [n for n in idle if self.subjects[n] is None]
        lost = [n for n in idle if self.subjects[n] is not None]
        out: dict[int, tuple[int, float]] = {}
        if lost:
            cost = np.array([[self._cost(self.subjects[n], candidates[j], None) for j in free] for n in lost])
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols):
                out[lost[i]] = (free[j], float(np.exp(-cost[i, j] / IDENTITY_SCALE)) * 0.5)
        left = [j for j in free if j not in {c for c, _ in out.values()}]
        # New subjects get their identities from left to right (then top to bottom) in the frame.
        chosen = sorted(left[: len(fresh)], key=lambda j: tuple(candidates[j].blob.centre))
        for n, j in zip(fresh, chosen):
            out[n] = (j, 1.0)
        return out

    def update(self, row: int, candidates: Sequence[Candidate]) -> Assignment:
        """Assign the ``candidates`` of frame ``row`` to the subjects and update what is known of them."""
        followed = self._followed(row)
        matched, cost = self._match_followed(row, candidates, followed)
        confidence = self._confidence(followed, matched, cost)
        free = [j for j in range(len(candidates)) if j not in matched.values()]
        for n, (j, conf) in self._take_up(row, candidates, free).items():
            matched[n], confidence[n] = j, conf
            self.subjects[n] = None  # a subject taken up again starts afresh where it was found
        detection = np.full(self.count, -1, dtype=np.int64)
        out_confidence = np.zeros(self.count)
        for n, j in matched.items():
            self._observe(n, row, candidates[j])
            detection[n], out_confidence[n] = j, confidence[n]
        return Assignment(detection, out_confidence)

    def _observe(self, n: int, row: int, candidate: Candidate) -> None:
        blob = candidate.blob
        subject = self.subjects[n]
        centre = np.asarray(blob.centre, dtype=np.float64)
        if subject is None:
            self.subjects[n] = _Subject(centre, float(blob.area), np.asarray(candidate.appearance, np.float64), row)
            return
        gap = max(row - subject.last_seen, 1)
        measured = (centre - subject.position) / gap
        limit = self.config.max_jump * self.body_length
        speed = np.linalg.norm(measured)
        if speed > limit:
            measured *= limit / speed
        subject.velocity = 0.5 * subject.velocity + 0.5 * measured
        subject.position, subject.last_seen = centre, row
        if not candidate.split:
            subject.area = 0.9 * subject.area + 0.1 * float(blob.area)
            subject.appearance = 0.9 * subject.appearance + 0.1 * np.asarray(candidate.appearance, np.float64)
