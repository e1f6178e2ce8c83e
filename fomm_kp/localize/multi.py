"""Several subjects in one video: each found in every frame, followed with its identity, and boxed.

Per frame (at work resolution, against the median background of :mod:`~fomm_kp.localize.background`)
the foreground falls into separate parts (:func:`~fomm_kp.localize.blobs.foreground_parts`); parts
much smaller than a typical subject are dropped (debris), and a part that the predicted positions of
several subjects fall on, and that is large enough to hold them (touching animals), is split
between them by a watershed on its distance transform seeded at those positions (or, before any
prediction exists, at the peaks of the distance transform). :class:`~fomm_kp.localize.identity.
IdentityTracker` assigns the parts to the subjects. Each subject's detections then become boxes
exactly as one subject's do (:func:`~fomm_kp.localize.boxes.boxes_from_blobs`: smoothed centres,
headings, one box side for every subject since one detector reads them all), and gaps of up to
``IdentityConfig.max_gap`` frames between two detections are bridged.

``subjects: auto`` counts the subjects on the background samples: the largest number of separate
subject-sized parts that at least ``IdentityConfig.persist_fraction`` of the sampled frames show.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.optimize import linear_sum_assignment
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from fomm_kp.config import IdentityConfig, LocalizeConfig
from fomm_kp.errors import FommError
from fomm_kp.localize.background import Background, estimate_background, reduce_frame, sample_reduced
from fomm_kp.localize.blobs import foreground_parts, part_blob
from fomm_kp.localize.boxes import box_side, boxes_from_blobs
from fomm_kp.localize.identity import Candidate, IdentityTracker
from fomm_kp.progress import Progress, report
from fomm_kp.video import iter_frames, probe

__all__ = ["Survey", "survey", "find_candidates", "SubjectsBoxes", "subjects_from_candidates", "Followed", "follow_subjects", "subjects_for_video",
           "bridge_gaps", "steadiest_heading"]

log = logging.getLogger(__name__)

HISTOGRAM_BINS = 8


class Survey(NamedTuple):
    """What the sampled frames say about the subjects: ``count`` (how many persist), ``area`` (a
    typical subject's area, frame pixels²) and ``length`` (its major-axis length, pixels)."""

    count: int
    area: float
    length: float


def _min_area(background: Background, config: LocalizeConfig) -> float:
    f = background.factor
    return max(config.min_area_fraction * background.frame_width * background.frame_height / (f * f), 1.0)


def survey(samples: Sequence[np.ndarray], background: Background, config: LocalizeConfig,
           identity: IdentityConfig, subjects: int | str = "auto") -> Survey:
    """Count the subjects (``subjects`` ``auto``) and measure a typical one on reduced sample frames."""
    f = background.factor
    per_frame = []
    for reduced in samples:
        _, _, area, _, _, _ = foreground_parts(reduced, background, config)
        per_frame.append(np.sort(area[1:][area[1:] >= _min_area(background, config)])[::-1])
    largest = [a[0] for a in per_frame if len(a)]
    if not largest:
        raise FommError("no subject distinct from the background was found in the sampled frames")
    reference = float(np.median(largest))
    counted = [a[a >= identity.min_relative_area * reference] for a in per_frame]
    counts = np.array([len(a) for a in counted])
    if subjects == "auto":
        count = max([n for n in range(1, int(counts.max()) + 1)
                     if np.mean(counts >= n) >= identity.persist_fraction] or [1])
    else:
        count = int(subjects)
    chosen = [i for i, a in enumerate(counted) if len(a) == count] or [i for i, a in enumerate(counted) if len(a)]
    area = float(np.median(np.concatenate([counted[i][:count] for i in chosen]))) * f * f
    length = float(np.median([_major_lengths(samples[i], background, config, counted[i][count - 1] if len(
        counted[i]) >= count else counted[i][-1]) for i in chosen[:16]]))
    log.info("survey: %d subject(s) (separate parts per sampled frame: median %d, max %d), typical area %.0f px², "
             "length %.0f px", count, int(np.median(counts)), int(counts.max()), area, length)
    return Survey(count, area, length)


def _major_lengths(reduced: np.ndarray, background: Background, config: LocalizeConfig, floor: float) -> float:
    """Median major-axis length (frame pixels) of the parts of at least ``floor`` work pixels² in a reduced frame."""
    diff, labels, area, _, _, _ = foreground_parts(reduced, background, config)
    lengths = [part_blob(labels == i, diff, background.factor, 1.0, config).major_length
               for i in range(1, len(area)) if area[i] >= floor]
    return float(np.median(lengths))


def _appearance(reduced: np.ndarray, mask: np.ndarray) -> np.ndarray:
    pixels = reduced[mask]
    grey = pixels.mean(axis=1)
    histogram = np.histogram(grey, bins=HISTOGRAM_BINS, range=(0.0, 256.0))[0].astype(np.float64)
    return np.concatenate([pixels.mean(axis=0), histogram / max(histogram.sum(), 1.0)])


def _to_work(points: np.ndarray, factor: int) -> np.ndarray:
    return (np.asarray(points, dtype=np.float64) + 0.5) / factor - 0.5


def _claims(labels: np.ndarray, parts: list[int], cx: np.ndarray, cy: np.ndarray, predicted: np.ndarray,
            reach: float, factor: int) -> dict[int, list[np.ndarray]]:
    """Part label → the predicted positions (work pixels) that fall on it, or nearest to it within ``reach``."""
    claims: dict[int, list[np.ndarray]] = {}
    h, w = labels.shape
    for point in _to_work(predicted[np.isfinite(predicted).all(axis=1)], factor):
        x, y = int(round(point[0])), int(round(point[1]))
        part = int(labels[y, x]) if 0 <= x < w and 0 <= y < h else 0
        if part not in parts:
            distances = [np.hypot(cx[i] - point[0], cy[i] - point[1]) for i in parts]
            part = parts[int(np.argmin(distances))] if distances and min(distances) <= reach else 0
        if part:
            claims.setdefault(part, []).append(point)
    return claims


def _body_map(component: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """Where the bodies of a part are: its distance transform weighted by its contrast with the
    background (thick and contrasted: a fly's thorax rather than its translucent wing)."""
    weights = np.where(component, diff, 0.0)
    return distance_transform_edt(component) * weights / max(float(weights.max()), 1e-6)


def _split(component: np.ndarray, body: np.ndarray, seeds: np.ndarray) -> list[np.ndarray]:
    """Split a bool mask by a watershed of its body map (:func:`_body_map`) from ``seeds`` ``(S, 2)``
    (work x, y)."""
    ys, xs = np.nonzero(component)
    markers = np.zeros(component.shape, dtype=np.int32)
    for s, (x, y) in enumerate(seeds, start=1):
        nearest = int(np.argmin((xs - x) ** 2 + (ys - y) ** 2))  # seed snapped onto the part
        if markers[ys[nearest], xs[nearest]]:
            return [component]
        markers[ys[nearest], xs[nearest]] = s
    regions = watershed(-body, markers, mask=component)
    pieces = [regions == s for s in range(1, len(seeds) + 1)]
    return pieces if all(p.sum() >= 2 for p in pieces) else [component]


def _peak_seeds(component: np.ndarray, body: np.ndarray, count: int, near: np.ndarray | None = None) -> np.ndarray:
    """``count`` seeds ``(S, 2)`` (work x, y) at peaks of a part's body map (:func:`_body_map`: the
    thick, contrasted middles of the bodies it holds): the highest peaks, or with ``near``
    ``(count, 2)`` (where the subjects should be) the peaks nearest to those points, one each."""
    radius = float(distance_transform_edt(component).max())
    peaks = peak_local_max(body, min_distance=max(1, int(0.5 * radius)),
                           num_peaks=count if near is None else 4 * count, labels=component.astype(int))
    peaks = peaks[:, ::-1].astype(np.float64)
    if near is None or len(peaks) <= count:
        return peaks[:count]
    rows, cols = linear_sum_assignment(np.linalg.norm(near[:, None] - peaks[None], axis=-1))
    return peaks[cols[np.argsort(rows)]]


def _contrast_heading(piece: np.ndarray, diff: np.ndarray, axis: np.ndarray) -> float:
    """The body ``axis`` ``(2,)`` pointed from the part's centroid towards the centroid of its most
    contrasted fifth (where it differs most from the background: a fly's thorax, a mouse's dark
    body rather than its paler ears and tail); NaN without an axis."""
    ys, xs = np.nonzero(piece)
    weights = diff[ys, xs].astype(np.float64)
    norm = float(np.linalg.norm(axis))
    if norm == 0 or len(weights) < 5:
        return float("nan")
    strong = weights >= np.quantile(weights, 0.8)
    offset = np.array([xs[strong].mean() - xs.mean(), ys[strong].mean() - ys.mean()])
    forward = axis / norm if offset @ axis >= 0 else -axis / norm
    return float(np.arctan2(forward[1], forward[0]))


def find_candidates(reduced: np.ndarray, background: Background, config: LocalizeConfig, identity: IdentityConfig,
                    typical: Survey, predicted: np.ndarray | None = None) -> list[Candidate]:
    """The subjects in one reduced frame: subject-sized foreground parts, touching ones split.

    ``predicted`` ``(N, 2)`` frame pixels (NaN: unknown) are where the followed subjects should be;
    a part that several of them claim is split between them. Without predictions, a part of at
    least ``split_area`` typical areas is split at the peaks of its distance transform, into as many
    pieces as it holds typical areas (at most ``typical.count``)."""
    f = background.factor
    diff, labels, area, mass, cx, cy = foreground_parts(reduced, background, config)
    typical_area = typical.area / (f * f)
    floor = max(_min_area(background, config), identity.min_relative_area * typical_area)
    parts = [i for i in range(1, len(area)) if area[i] >= floor]
    total = float(mass[1:].sum()) or 1.0
    claims = {} if predicted is None else _claims(labels, parts, cx, cy, predicted,
                                                  identity.max_jump * typical.length / f, f)
    candidates = []
    for i in parts:
        component = labels == i
        pieces = [component]
        if area[i] >= identity.split_area * typical_area:
            near = np.asarray(claims.get(i, [])) if predicted is not None else None
            wanted = len(near) if near is not None else min(typical.count, int(round(area[i] / typical_area)))
            if wanted >= 2:
                body = _body_map(component, diff)
                pieces = _split(component, body, _peak_seeds(component, body, int(wanted), near))
        for piece in pieces:
            blob = part_blob(piece, diff, f, float(diff[piece].sum() / total), config)
            contrast = _contrast_heading(piece, diff, blob.ends[0] - blob.ends[1])
            candidates.append(Candidate(blob, _appearance(reduced, piece), len(pieces) > 1, contrast))
    return candidates


@dataclass(frozen=True, eq=False)
class SubjectsBoxes:
    """Per-frame square crop boxes of N subjects with their identities kept.

    Attributes:
        boxes: float32 ``(T, N, 4)`` ``x0, y0, x1, y1``, integer-valued, side ``side``.
        centres: float32 ``(T, N, 2)`` smoothed centres (interpolated where not found).
        angles: float32 ``(T, N)`` smoothed headings (radians).
        found: bool ``(T, N)`` the subject was detected in that frame.
        present: bool ``(T, N)`` detected, or within a bridged gap of up to ``max_gap`` frames.
        identity: float32 ``(T, N)`` identity confidence in [0, 1] (0 where not present).
        frame_indices: int64 ``(T,)``; side, frame_width, frame_height: pixels;
        elongation: median elongation of every subject where found.
    """

    boxes: np.ndarray
    centres: np.ndarray
    angles: np.ndarray
    found: np.ndarray
    present: np.ndarray
    identity: np.ndarray
    frame_indices: np.ndarray
    side: int
    frame_width: int
    frame_height: int
    elongation: float = 1.0

    def __post_init__(self) -> None:
        t, n = self.found.shape
        for name in ("present", "identity", "angles"):
            if getattr(self, name).shape != (t, n):
                raise FommError(f"SubjectsBoxes: {name} {getattr(self, name).shape} disagrees with found {(t, n)}")
        if self.boxes.shape != (t, n, 4) or self.centres.shape != (t, n, 2) or self.frame_indices.shape != (t,):
            raise FommError(f"SubjectsBoxes: boxes {self.boxes.shape}, centres {self.centres.shape} or frame "
                            f"indices {self.frame_indices.shape} disagree with found {(t, n)}")

    @property
    def count(self) -> int:
        return int(self.found.shape[1])

    def __len__(self) -> int:
        return len(self.frame_indices)

    def crop_boxes(self, align: bool = False) -> np.ndarray:
        """Boxes ``(T, N, 4)``, or with ``align`` ``(T, N, 5)`` turned to each subject's heading."""
        if not align:
            return self.boxes
        return np.concatenate([self.boxes, self.angles[..., None].astype(np.float32)], axis=-1)


def bridge_gaps(found: np.ndarray, max_gap: int) -> np.ndarray:
    """``found`` bool ``(T,)`` with interior runs of at most ``max_gap`` misses filled in."""
    present = found.copy()
    seen = np.flatnonzero(found)
    for a, b in zip(seen[:-1], seen[1:]):
        if 1 < b - a <= max_gap + 1:
            present[a + 1:b] = True
    return present


HEADING_CUES = ("shape", "contrast")


def _flip_rate(headings: np.ndarray) -> float:
    """Share of consecutive finite headings ``(T,)`` that differ by more than a quarter turn."""
    h = headings[np.isfinite(headings)]
    return float(np.mean(np.cos(np.diff(h)) < 0)) if len(h) > 1 else 1.0


def steadiest_heading(detected: Sequence[Sequence[Candidate | None]]) -> str:
    """The heading cue, ``shape`` (:attr:`~fomm_kp.localize.blobs.Blob.heading`) or ``contrast``
    (:attr:`~fomm_kp.localize.identity.Candidate.contrast_heading`), that flips least between
    consecutive detections of the same subject (``detected[s][t]``): a cue that follows a real body
    part is steady, one that guesses flips often. Headings are then taken from it for every
    subject (they are animals of one kind)."""
    rates = {}
    for cue in HEADING_CUES:
        flips = [_flip_rate(np.array([np.nan if c is None else (c.blob.heading if cue == "shape" else c.contrast_heading)
                                      for c in per])) for per in detected]
        rates[cue] = float(np.mean(flips))
    chosen = min(HEADING_CUES, key=lambda cue: rates[cue])
    log.info("heading cue: %s (flips between frames: %s)", chosen,
             ", ".join(f"{cue} {rate:.1%}" for cue, rate in rates.items()))
    return chosen


def _bridged_identity(confidence: np.ndarray, found: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Identity confidence over bridged frames: half the lower of the two ends' confidences."""
    out = np.where(found, confidence, 0.0)
    seen = np.flatnonzero(found)
    for a, b in zip(seen[:-1], seen[1:]):
        if b - a > 1 and present[a + 1]:
            out[a + 1:b] = 0.5 * min(confidence[a], confidence[b])
    return out


def subjects_from_candidates(
    frames: Sequence[list[Candidate]], assignments: np.ndarray, confidence: np.ndarray, frame_indices: np.ndarray,
    size: tuple[int, int], config: LocalizeConfig, identity: IdentityConfig, side: int | None = None,
) -> SubjectsBoxes:
    """Boxes of each subject from the assigned detections: ``assignments`` int ``(T, N)`` (index into
    that frame's candidates, -1: none), ``confidence`` ``(T, N)``; ``size`` = (width, height)."""
    width, height = size
    t, n = assignments.shape
    detected = [[frames[r][assignments[r, s]] if assignments[r, s] >= 0 else None for r in range(t)] for s in range(n)]
    cue = steadiest_heading(detected)
    blobs = [[None if c is None else c.blob if cue == "shape" else dataclasses.replace(c.blob, heading=c.contrast_heading)
              for c in per] for per in detected]
    lengths = np.array([b.major_length for per in blobs for b in per if b is not None])
    side = int(side) if side is not None else box_side(lengths, width, height, config)
    located = [boxes_from_blobs(per, frame_indices, width, height, config, side) for per in blobs]
    found = np.stack([b.found for b in located], axis=1)
    present = np.stack([bridge_gaps(found[:, s], identity.max_gap) for s in range(n)], axis=1)
    bridged = np.stack([_bridged_identity(confidence[:, s], found[:, s], present[:, s]) for s in range(n)], axis=1)
    elongations = [b.elongation for per in blobs for b in per if b is not None]
    return SubjectsBoxes(
        boxes=np.stack([b.boxes for b in located], axis=1), centres=np.stack([b.centres for b in located], axis=1),
        angles=np.stack([b.angles for b in located], axis=1), found=found, present=present,
        identity=bridged.astype(np.float32), frame_indices=np.asarray(frame_indices, dtype=np.int64), side=side,
        frame_width=width, frame_height=height, elongation=float(np.median(elongations)) if elongations else 1.0)


class Followed(NamedTuple):
    """The detections of every frame (``candidates[t]``), the one assigned to each subject
    (``detection`` int ``(T, N)``, -1: none), identity confidences ``(T, N)`` and frame indices ``(T,)``."""

    candidates: list[list[Candidate]]
    detection: np.ndarray
    confidence: np.ndarray
    frame_indices: np.ndarray


def follow_subjects(frames: Iterable[tuple[int, np.ndarray]], background: Background, config: LocalizeConfig,
                    identity: IdentityConfig, typical: Survey, progress: Callable[[int], None] | None = None,
                    ) -> Followed:
    """Detect the subjects in each ``(index, frame)`` and assign them their identities, in order."""
    tracker = IdentityTracker(typical.count, typical.length, identity)
    candidates, rows, confidence, indices = [], [], [], []
    for row, (index, frame) in enumerate(frames):
        predicted = tracker.predictions(row)
        found = find_candidates(reduce_frame(frame, background.factor), background, config, identity, typical,
                                predicted if np.isfinite(predicted).any() else None)
        assignment = tracker.update(row, found)
        candidates.append(found)
        rows.append(assignment.detection)
        confidence.append(assignment.confidence)
        indices.append(index)
        if progress is not None:
            progress(len(indices))
    if not indices:
        raise FommError("no frames to follow the subjects in")
    return Followed(candidates, np.stack(rows), np.stack(confidence), np.asarray(indices, dtype=np.int64))


def subjects_for_video(
    path: str | os.PathLike, config: LocalizeConfig = LocalizeConfig(), identity: IdentityConfig = IdentityConfig(),
    subjects: int | str = "auto", background: Background | None = None, side: int | None = None,
    progress: Progress | None = None,
) -> SubjectsBoxes:
    """Find, follow and box ``subjects`` (a number or ``auto``) through every frame of a video."""
    info = probe(path)
    if background is None:
        background = estimate_background(path, config)
    if (background.frame_width, background.frame_height) != (info.width, info.height):
        raise FommError(f"background size {background.frame_width}x{background.frame_height} differs from the "
                        f"video's {info.width}x{info.height} ({path})")
    if background.samples is not None and background.source == str(path):
        samples = list(background.samples)
    else:
        samples = sample_reduced(path, config, config.background_samples)[0]
    typical = survey(samples, background, config, identity, subjects)

    def heard(done: int) -> None:
        if done % 50 == 0 or done == info.num_frames:
            report(progress, done, info.num_frames, "localising subjects")

    followed = follow_subjects(iter_frames(path), background, config, identity, typical, heard)
    located = subjects_from_candidates(followed.candidates, followed.detection, followed.confidence,
                                       followed.frame_indices, (info.width, info.height), config, identity, side)
    log.info("followed %d subject(s) through %d frames of %s: found in %s of frames; box side %d px",
             located.count, len(located), path, ", ".join(f"{v:.0%}" for v in located.found.mean(axis=0)),
             located.side)
    return located
