"""Find and follow a small subject in a large, static frame: background model + blobs → crop boxes.

A mouse in a 640×480 arena covers a few percent of the frame; a keypoint model that sees the whole
frame at 64–128 px spends its capacity on the arena. This module finds the subject in every frame
(difference to a median background, automatic threshold, morphological clean-up, connected
components), follows it smoothly over time and gives one fixed-size square box per frame to crop
for training and tracking. Keypoints found in a crop are mapped back to full-frame pixels with
:func:`crop_to_frame`.

All work happens on frames reduced by an integer block-mean factor (longer side about
``LocalizeConfig.work_size`` pixels), streaming, so memory stays constant on long videos.

Coordinates: pixels of the original frame, origin at the centre of the top-left pixel, x right,
y down. Boxes are ``(x0, y0, x1, y1)`` with integer values, ``x1 - x0 == y1 - y0 == side``; the crop
is ``frame[y0:y1, x0:x1]`` (see :func:`fomm_kp.video.crop_frame`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.video import iter_frames, probe

__all__ = [
    "LocalizeConfig",
    "Background",
    "Blob",
    "SubjectBoxes",
    "LocalizeDecision",
    "work_factor",
    "reduce_frame",
    "background_from_frames",
    "estimate_background",
    "find_subject",
    "blob_moments",
    "smooth_centres",
    "smooth_headings",
    "boxes_from_blobs",
    "boxes_for_frames",
    "boxes_for_video",
    "decide",
    "decide_from_blobs",
    "should_align",
    "box_maps",
    "crop_to_frame",
    "frame_to_crop",
    "mask_not_found",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class LocalizeConfig:
    """How the subject is found, followed and boxed.

    Attributes:
        work_size: frames are reduced by an integer factor so that their longer side is about this
            many pixels before any processing (speed; the subject must stay a few pixels wide).
        background_samples: frames sampled evenly across the video for the median background.
        threshold_sigmas: foreground = difference above median + this many robust (MAD) sigmas of
            the frame's difference image ...
        min_contrast: ... and above this many grey levels (0–255), whichever is larger.
        opening_radius: radius (work pixels) of the morphological opening that removes thin
            structures (tails, trails, edges of a slightly moved camera) and noise.
        min_area_fraction: smallest subject area, as a fraction of the frame area.
        core_fraction: before its moments are taken, the subject loses appendages (tails, legs)
            thinner than this fraction of its thickest part (0: keep the whole component).
        margin: box side = margin × (a high quantile of the subject's major-axis length).
        size_quantile: that quantile, over the frames where the subject was found.
        min_side: smallest box side in pixels.
        smooth_sigma: Gaussian smoothing of box centres over time, in frames (0: none).
        max_jump_fraction: a detection farther than this × box side from the previous one must
            have at least this share of the strongest candidate's mass to be preferred over the
            nearest candidate (keeps the track on one animal when a second blob appears).
        max_area_fraction: :func:`decide` turns localisation off when the subject's median area
            exceeds this fraction of the frame (whole-frame subjects: faces, fire) ...
        max_side_fraction: ... or when the box side would exceed this fraction of the frame's
            shorter side ...
        min_found_fraction: ... or when the subject is found in fewer than this share of frames ...
        min_dominance: ... or when the subject's median share of the foreground is below this
            (several comparable moving parts: a talking face, flames, several animals).
        axis_min_elongation: below this elongation the core's axis is not trusted for the heading
            (see :attr:`Blob.heading`).
        align_min_elongation: crops are turned to the subject's heading (``align: auto``) only when
            its median elongation (:attr:`Blob.elongation`) reaches this: a round subject has no
            stable axis.
    """

    work_size: int = 160
    background_samples: int = 48
    threshold_sigmas: float = 6.0
    min_contrast: float = 12.0
    opening_radius: int = 1
    min_area_fraction: float = 2e-4
    margin: float = 1.5
    size_quantile: float = 0.5
    min_side: int = 32
    core_fraction: float = 0.4
    smooth_sigma: float = 2.0
    max_jump_fraction: float = 1.0
    max_area_fraction: float = 0.1
    max_side_fraction: float = 0.75
    min_found_fraction: float = 0.7
    min_dominance: float = 0.8
    axis_min_elongation: float = 1.5
    align_min_elongation: float = 1.4

    def __post_init__(self) -> None:
        if self.work_size < 16:
            raise FommError(f"LocalizeConfig.work_size must be >= 16, got {self.work_size}")
        if self.background_samples < 3:
            raise FommError(f"LocalizeConfig.background_samples must be >= 3, got {self.background_samples}")
        if self.margin < 1.0:
            raise FommError(f"LocalizeConfig.margin must be >= 1, got {self.margin}")
        if not 0.0 < self.size_quantile <= 1.0:
            raise FommError(f"LocalizeConfig.size_quantile must be in (0, 1], got {self.size_quantile}")
        if self.opening_radius < 0 or self.min_side < 4 or self.smooth_sigma < 0:
            raise FommError("LocalizeConfig: opening_radius, smooth_sigma must be >= 0 and min_side >= 4")


@dataclass(frozen=True, eq=False)
class Background:
    """A median background at work resolution.

    Attributes:
        image: float32 ``(h, w, 3)``, the frame reduced by ``factor`` (block means), 0–255.
        factor: integer reduction factor; work pixel ``(i, j)`` covers frame pixels
            ``[i*factor, (i+1)*factor)`` × ``[j*factor, (j+1)*factor)``.
        frame_width, frame_height: size of the original frames.
        samples: float32 ``(n, h, w, 3)`` the reduced frames the median was taken over, when it
            came from a video (lets :func:`decide` judge them without reading the video again).
        source: the video or folder it was estimated from ("" for frames given in memory).
    """

    image: np.ndarray
    factor: int
    frame_width: int
    frame_height: int
    samples: np.ndarray | None = None
    source: str = ""


@dataclass(frozen=True, eq=False)
class Blob:
    """The subject in one frame, in original-frame pixels.

    Attributes:
        centre: float ``(2,)`` centroid x, y of the foreground component.
        area: component area in pixels².
        covariance: float ``(2, 2)`` second central moments (pixels²).
        ends: float ``(2, 2)``: the two ends of the principal axis, ``centre ± 2·sqrt(λ_max)·v``;
            the first end lies on the side the component's third moment (skew) points to, so the
            order is consistent for asymmetric shapes.
        major_length: ``4·sqrt(λ_max)`` (the full length of an equivalent ellipse), pixels.
        contrast: mean absolute difference to the background inside the component (grey levels).
        dominance: the component's share of all foreground mass in the frame (1: nothing else
            differs from the background; a face or flames give many comparable parts).
        heading: where the subject points, in radians (``atan2(dy, dx)``, y down): the principal
            axis, turned away from the appendages the core lost (a tail, legs: they trail behind
            the body's centre); when the core is too round for an axis (elongation below
            ``LocalizeConfig.axis_min_elongation``: a rearing or curled animal), the direction from
            the appendages' centroid to the core's. Without appendages the axis points away from
            the core's skew side. NaN: unknown.
        elongation: ``sqrt(λ_max / λ_min)`` of the moments (1: round).
    """

    centre: np.ndarray
    area: float
    covariance: np.ndarray
    ends: np.ndarray
    major_length: float
    contrast: float
    dominance: float
    heading: float = float("nan")
    elongation: float = 1.0


@dataclass(frozen=True, eq=False)
class SubjectBoxes:
    """Per-frame square crop boxes that follow the subject.

    Attributes:
        boxes: float32 ``(T, 4)`` ``x0, y0, x1, y1`` in frame pixels, integer-valued, side ``side``.
        centres: float32 ``(T, 2)`` smoothed subject centre (interpolated where not found).
        found: bool ``(T,)`` whether the subject was detected in that frame.
        frame_indices: int64 ``(T,)`` frame index of each row.
        side: box side in pixels (one per video).
        frame_width, frame_height: original frame size.
        angles: float32 ``(T,)`` the subject's heading (:attr:`Blob.heading`) in radians, smoothed
            like the centres and interpolated where not found (0 where never found).
        elongation: median :attr:`Blob.elongation` where found (1 when never found).
    """

    boxes: np.ndarray
    centres: np.ndarray
    found: np.ndarray
    frame_indices: np.ndarray
    side: int
    frame_width: int
    frame_height: int
    angles: np.ndarray | None = None
    elongation: float = 1.0

    def __post_init__(self) -> None:
        t = len(self.frame_indices)
        if self.boxes.shape != (t, 4) or self.centres.shape != (t, 2) or self.found.shape != (t,):
            raise FommError(
                f"SubjectBoxes: boxes {self.boxes.shape}, centres {self.centres.shape}, found "
                f"{self.found.shape} disagree with {t} frame indices"
            )
        if self.angles is not None and self.angles.shape != (t,):
            raise FommError(f"SubjectBoxes: angles {self.angles.shape} disagree with {t} frame indices")

    def crop_boxes(self, align: bool = False) -> np.ndarray:
        """Boxes to crop with: ``(T, 4)``, or with ``align`` ``(T, 5)`` whose last column turns each
        crop so that the subject's heading points along the crop's +x axis (see
        :func:`fomm_kp.video.crop_frame`)."""
        if not align:
            return self.boxes
        angles = np.zeros(len(self), np.float32) if self.angles is None else self.angles
        return np.concatenate([self.boxes, angles[:, None].astype(np.float32)], axis=1)

    def __len__(self) -> int:
        return len(self.frame_indices)


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
    """

    use: bool
    reason: str
    area_fraction: float
    found_fraction: float
    side: int
    dominance: float


# ----------------------------------------------------------------------------------------------
# Reduction and background


def work_factor(width: int, height: int, config: LocalizeConfig) -> int:
    """Integer block-mean factor that brings the longer side near ``config.work_size``."""
    return max(1, int(round(max(width, height) / config.work_size)))


def reduce_frame(frame: np.ndarray, factor: int) -> np.ndarray:
    """Block-mean reduction of a uint8 ``(H, W, 3)`` frame → float32 ``(H//factor, W//factor, 3)``.

    Rows and columns beyond a multiple of ``factor`` are dropped (at most ``factor - 1`` pixels).
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise FommError(f"expected a frame of shape (H, W, 3), got {frame.shape}")
    if factor == 1:
        return frame.astype(np.float32)
    h, w = frame.shape[0] // factor, frame.shape[1] // factor
    if h < 1 or w < 1:
        raise FommError(f"frame {frame.shape[:2]} is smaller than the reduction factor {factor}")
    total = np.zeros((h, w, 3), dtype=np.uint32 if factor > 16 else np.uint16)
    for dy in range(factor):  # strided sums: far faster than a mean over a reshaped view
        for dx in range(factor):
            total += frame[dy : h * factor : factor, dx : w * factor : factor]
    return total.astype(np.float32) * np.float32(1.0 / (factor * factor))


def background_from_frames(frames: np.ndarray | Sequence[np.ndarray], config: LocalizeConfig = LocalizeConfig()) -> Background:
    """Median background of uint8 frames ``(T, H, W, 3)`` (all of them; sample beforehand)."""
    frames_list = list(frames)
    if len(frames_list) == 0:
        raise FommError("cannot estimate a background from zero frames")
    height, width = frames_list[0].shape[:2]
    factor = work_factor(width, height, config)
    reduced = np.stack([reduce_frame(f, factor) for f in frames_list])
    if len(frames_list) < 3:
        log.warning("background from only %d frames: a subject that moves little will be part of it", len(frames_list))
    return Background(np.median(reduced, axis=0).astype(np.float32), factor, width, height)


def _sample_stride(num_frames: int, num_samples: int) -> int:
    return max(1, num_frames // num_samples)


def _sample_reduced(path: str | os.PathLike, config: LocalizeConfig, num_samples: int) -> tuple[list[np.ndarray], int, int, int]:
    """Up to ``num_samples`` frames spread evenly over a video, reduced: (frames, factor, width, height)."""
    info = probe(path)
    factor = work_factor(info.width, info.height, config)
    stride = _sample_stride(info.num_frames, num_samples)
    reduced = [reduce_frame(frame, factor) for _, frame in iter_frames(path, stride=stride)]
    if not reduced:
        raise FommError(f"no frames read from {path} for the background")
    keep = np.unique(np.round(np.linspace(0, len(reduced) - 1, min(num_samples, len(reduced)))).astype(int))
    return [reduced[i] for i in keep], factor, info.width, info.height


def estimate_background(
    path: str | os.PathLike, config: LocalizeConfig = LocalizeConfig(), num_samples: int | None = None
) -> Background:
    """Median of ``num_samples`` (default ``config.background_samples``) frames spread evenly over a
    video or image folder.

    A subject that rests in one place for more than half the sampled frames becomes part of the
    background and is then not found there; spread the samples over a long enough stretch.
    """
    num_samples = config.background_samples if num_samples is None else num_samples
    samples, factor, width, height = _sample_reduced(path, config, num_samples)
    log.info("background of %s: median of %d frames, reduced by %d", path, len(samples), factor)
    stacked = np.stack(samples)
    return Background(np.median(stacked, axis=0).astype(np.float32), factor, width, height, stacked, str(path))


# ----------------------------------------------------------------------------------------------
# One frame


def _check_background(frame: np.ndarray, background: Background) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise FommError(f"expected a frame of shape (H, W, 3), got {frame.shape}")
    if frame.shape[1] != background.frame_width or frame.shape[0] != background.frame_height:
        raise FommError(
            f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the background's "
            f"{background.frame_width}x{background.frame_height}"
        )


def _foreground(reduced: np.ndarray, background: Background, config: LocalizeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Difference image (h, w) and cleaned foreground mask (h, w) at work resolution."""
    from scipy.ndimage import binary_opening
    from skimage.morphology import disk

    diff = np.abs(reduced - background.image).max(axis=2)
    median = float(np.median(diff))
    sigma = 1.4826 * float(np.median(np.abs(diff - median)))
    threshold = max(median + config.threshold_sigmas * sigma, config.min_contrast)
    mask = diff > threshold
    if config.opening_radius > 0:
        mask = binary_opening(mask, structure=disk(config.opening_radius))
    return diff, mask


def _components(mask: np.ndarray, diff: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Label the mask; per component (index 1..n): area, mass (sum of diff), centroid x, y."""
    from skimage.measure import label

    labels = label(mask, connectivity=2)
    n = int(labels.max())
    flat = labels.ravel()
    ys, xs = np.indices(mask.shape)
    area = np.bincount(flat, minlength=n + 1).astype(np.float64)
    mass = np.bincount(flat, weights=diff.ravel(), minlength=n + 1)
    safe = np.maximum(area, 1.0)
    cx = np.bincount(flat, weights=xs.ravel(), minlength=n + 1) / safe
    cy = np.bincount(flat, weights=ys.ravel(), minlength=n + 1) / safe
    return labels, area, mass, cx, cy


def find_subject(
    frame: np.ndarray,
    background: Background,
    config: LocalizeConfig = LocalizeConfig(),
    previous: np.ndarray | None = None,
    scale: float | None = None,
) -> Blob | None:
    """The subject in one uint8 frame ``(H, W, 3)``, or None when nothing large enough differs from
    the background.

    Among the foreground components at least ``config.min_area_fraction`` of the frame, the one
    with the largest mass (summed difference to the background: large and contrasted) wins. When
    ``previous`` (a frame-pixel centre ``(2,)``) and ``scale`` (pixels, e.g. the box side) are given,
    a component within ``config.max_jump_fraction × scale`` of it is preferred unless a farther one
    has more than twice its mass.
    """
    frame = np.asarray(frame)
    _check_background(frame, background)
    return _find_in_reduced(reduce_frame(frame, background.factor), background, config, previous, scale)


def _find_in_reduced(
    reduced: np.ndarray, background: Background, config: LocalizeConfig, previous: np.ndarray | None = None,
    scale: float | None = None,
) -> Blob | None:
    """:func:`find_subject` on a frame already reduced by ``background.factor``."""
    f = background.factor
    diff, mask = _foreground(reduced, background, config)
    labels, area, mass, cx, cy = _components(mask, diff)
    min_area = config.min_area_fraction * background.frame_width * background.frame_height / (f * f)
    candidates = [i for i in range(1, len(area)) if area[i] >= max(min_area, 1.0)]
    if not candidates:
        return None
    best = max(candidates, key=lambda i: mass[i])
    if previous is not None and scale is not None and np.all(np.isfinite(previous)):
        px, py = (float(previous[0]) + 0.5) / f - 0.5, (float(previous[1]) + 0.5) / f - 0.5
        reach = config.max_jump_fraction * scale / f
        near = [i for i in candidates if np.hypot(cx[i] - px, cy[i] - py) <= reach]
        if near:
            nearest = max(near, key=lambda i: mass[i])
            if mass[best] <= 2.0 * mass[nearest]:
                best = nearest
    component = labels == best
    ys, xs = _core(component, config.core_fraction)
    whole_ys, whole_xs = np.nonzero(component)
    return _blob_from_pixels(xs, ys, diff[ys, xs], f, float(mass[best] / mass[1:].sum()), whole_xs, whole_ys,
                             config.axis_min_elongation)


def _core(component: np.ndarray, core_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (ys, xs) of a component without its thin appendages: an opening with a
    disk of radius ``core_fraction`` × the component's largest inscribed radius, keeping the largest
    remaining part (the whole component when nothing remains)."""
    from scipy.ndimage import binary_opening, distance_transform_edt
    from skimage.measure import label
    from skimage.morphology import disk

    ys, xs = np.nonzero(component)
    if core_fraction <= 0:
        return ys, xs
    y0, x0 = ys.min(), xs.min()
    local = np.zeros((ys.max() - y0 + 3, xs.max() - x0 + 3), dtype=bool)
    local[ys - y0 + 1, xs - x0 + 1] = True
    radius = int(round(core_fraction * float(distance_transform_edt(local).max())))
    if radius < 1:
        return ys, xs
    core = binary_opening(local, structure=disk(radius))
    if not core.any():
        return ys, xs
    parts = label(core, connectivity=2)
    largest = int(np.argmax(np.bincount(parts.ravel())[1:])) + 1
    cy, cx = np.nonzero(parts == largest)
    return cy + y0 - 1, cx + x0 - 1


def _blob_from_pixels(
    xs: np.ndarray, ys: np.ndarray, weights: np.ndarray, factor: int, dominance: float,
    whole_xs: np.ndarray | None = None, whole_ys: np.ndarray | None = None, axis_min_elongation: float = 1.5,
) -> Blob:
    """Moments of a component given its work-resolution pixel coordinates, in frame pixels.

    ``whole_xs, whole_ys``: the whole component (with appendages) when ``xs, ys`` is its core; its
    appendages orient the heading (see :attr:`Blob.heading`); without them the core's own skew does."""
    fx = (xs.astype(np.float64) + 0.5) * factor - 0.5
    fy = (ys.astype(np.float64) + 0.5) * factor - 0.5
    centre = np.array([fx.mean(), fy.mean()])
    d = np.stack([fx - centre[0], fy - centre[1]], axis=1)
    within = (factor * factor - 1) / 12.0  # variance of a uniform block of side `factor`
    cov = d.T @ d / len(d) + within * np.eye(2)
    evals, evecs = np.linalg.eigh(cov)
    v = evecs[:, 1]
    projection = d @ v
    skew = float(np.mean(projection**3))
    if skew < 0 or (skew == 0 and (v[0] < 0 or (v[0] == 0 and v[1] < 0))):
        v = -v
    half = 2.0 * np.sqrt(max(evals[1], 0.0))
    ends = np.stack([centre + half * v, centre - half * v])
    elongation = float(np.sqrt(evals[1] / max(evals[0], 1e-12)))
    heading = -v  # away from the skew side
    count = 0 if whole_xs is None or whole_ys is None else len(whole_xs) - len(xs)
    if count >= 3 and count >= 0.05 * len(whole_xs):
        # The appendages (whole minus core: a tail, legs) sit behind the body's centre: the vector
        # from their centroid to the core's points forward. It orients the core's axis, or stands
        # in for it when the core is too round to have one (a rearing or curled animal).
        appendage = np.array([whole_xs.sum() - xs.sum(), whole_ys.sum() - ys.sum()], dtype=np.float64) / count
        forward = np.array([xs.mean(), ys.mean()]) - appendage
        if elongation >= axis_min_elongation:
            heading = v if forward @ v >= 0 else -v
        elif np.linalg.norm(forward) > 0:
            heading = forward / np.linalg.norm(forward)
    return Blob(
        centre=centre.astype(np.float32),
        area=float(len(xs) * factor * factor),
        covariance=cov.astype(np.float32),
        ends=ends.astype(np.float32),
        major_length=float(2.0 * half),
        contrast=float(np.mean(weights)),
        dominance=dominance,
        heading=float(np.arctan2(heading[1], heading[0])),
        elongation=elongation,
    )


def blob_moments(frame: np.ndarray, background: Background, config: LocalizeConfig = LocalizeConfig()) -> np.ndarray:
    """Blob-moment pose of one frame: float32 ``(3, 2)`` = centroid, first and second end of the
    principal axis (see :class:`Blob`), in frame pixels; all NaN when no subject is found.

    The model-free baseline a lab would use: what the foreground's shape alone says.
    """
    blob = find_subject(frame, background, config)
    if blob is None:
        return np.full((3, 2), np.nan, dtype=np.float32)
    return np.concatenate([blob.centre[None], blob.ends]).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Over time


def _interpolate(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation of a ``(T, D)`` array over rows where ``valid`` is False (ends held)."""
    out = values.astype(np.float64).copy()
    idx = np.arange(len(values))
    for d in range(values.shape[1]):
        out[:, d] = np.interp(idx, idx[valid], values[valid, d])
    return out


def smooth_centres(centres: np.ndarray, found: np.ndarray, sigma: float) -> np.ndarray:
    """Fill and smooth a ``(T, 2)`` centre track.

    Rows where ``found`` is False are linearly interpolated (held at the ends); isolated jumps are
    removed with a 5-frame running median, then a Gaussian of ``sigma`` frames smooths the track
    (both on a track extended by odd reflection, so steady motion is not biased at the ends).
    Returns float64 ``(T, 2)``; all NaN when nothing was found.
    """
    from scipy.ndimage import gaussian_filter1d, median_filter

    centres = np.asarray(centres, dtype=np.float64)
    found = np.asarray(found, dtype=bool)
    if centres.ndim != 2 or centres.shape[1] != 2 or found.shape != (len(centres),):
        raise FommError(f"smooth_centres: centres must be (T, 2) and found (T,), got {centres.shape}, {found.shape}")
    if not found.any():
        return np.full_like(centres, np.nan)
    track = _interpolate(centres, found)
    if len(track) < 3:
        return track
    # Odd reflection at both ends (2·end − mirrored samples) keeps a steady motion unbiased there.
    pad = min(len(track) - 1, max(2, int(np.ceil(4 * sigma))))
    padded = np.concatenate([2 * track[:1] - track[pad:0:-1], track, 2 * track[-1:] - track[-2 : -pad - 2 : -1]])
    if len(track) >= 5:
        padded = median_filter(padded, size=(5, 1), mode="nearest")
    if sigma > 0:
        padded = gaussian_filter1d(padded, sigma=sigma, axis=0, mode="nearest")
    return padded[pad : pad + len(track)]


def smooth_headings(headings: np.ndarray, found: np.ndarray, sigma: float, vote_frames: int = 25) -> np.ndarray:
    """Smooth a heading track ``(T,)`` (radians), robust to head/tail flips.

    The axis (heading modulo π, as a doubled angle) is filled and smoothed like the centres
    (:func:`smooth_centres`) and made continuous in time; its direction then follows the majority
    of the per-frame headings within ``vote_frames`` frames either side, so a subject that turns
    round keeps its head forward and isolated flips of the shape cue do not turn the crop.
    Returns float64 ``(T,)``; zeros when nothing was found.
    """
    from scipy.ndimage import uniform_filter1d

    headings = np.asarray(headings, dtype=np.float64)
    found = np.asarray(found, dtype=bool) & np.isfinite(headings)
    if not found.any():
        return np.zeros(len(headings))
    doubled = np.stack([np.cos(2 * headings), np.sin(2 * headings)], axis=1)
    doubled[~found] = 0.0
    smoothed = smooth_centres(doubled, found, sigma)
    axis = np.arctan2(smoothed[:, 1], smoothed[:, 0]) / 2.0
    vectors = np.stack([np.cos(axis), np.sin(axis)], axis=1)
    for i in range(1, len(vectors)):  # continuous in time: no half-turn between neighbours
        if vectors[i] @ vectors[i - 1] < 0:
            vectors[i] = -vectors[i]
    raw = np.stack([np.cos(headings), np.sin(headings)], axis=1)
    votes = np.where(found, np.sign(np.sum(np.nan_to_num(raw) * vectors, axis=1)), 0.0)
    window = 2 * int(vote_frames) + 1
    tally = uniform_filter1d(votes, size=min(window, 2 * len(votes) - 1), mode="nearest")
    tally = np.where(tally == 0, 1.0, tally)  # a tie keeps the axis as it is
    vectors *= np.sign(tally)[:, None]
    return np.arctan2(vectors[:, 1], vectors[:, 0])


def _box_side(lengths: np.ndarray, width: int, height: int, config: LocalizeConfig) -> int:
    if len(lengths) == 0:
        side = min(width, height)
    else:
        side = config.margin * float(np.quantile(lengths, config.size_quantile))
    side = int(np.ceil(max(side, config.min_side) / 2.0) * 2)  # even, for video writers
    return min(side, max(width, height))


def _boxes(centres: np.ndarray, side: int, width: int, height: int) -> np.ndarray:
    """Integer square boxes of ``side`` centred on ``centres`` (T, 2), shifted to lie inside the
    frame where the frame is large enough."""
    x0 = np.round(centres[:, 0] + 0.5 - side / 2.0)
    y0 = np.round(centres[:, 1] + 0.5 - side / 2.0)
    if side <= width:
        x0 = np.clip(x0, 0, width - side)
    else:
        x0 = np.full_like(x0, np.floor((width - side) / 2.0))
    if side <= height:
        y0 = np.clip(y0, 0, height - side)
    else:
        y0 = np.full_like(y0, np.floor((height - side) / 2.0))
    return np.stack([x0, y0, x0 + side, y0 + side], axis=1).astype(np.float32)


def boxes_from_blobs(
    blobs: Sequence[Blob | None],
    frame_indices: np.ndarray,
    width: int,
    height: int,
    config: LocalizeConfig = LocalizeConfig(),
    side: int | None = None,
    smooth: bool = True,
) -> SubjectBoxes:
    """Turn per-frame detections into boxes: one side per sequence (``side`` or from the subject's
    size), centres interpolated over misses and smoothed over time when ``smooth``.

    When the subject is never found every box is centred in the frame and ``found`` is all False.
    """
    t = len(blobs)
    frame_indices = np.asarray(frame_indices, dtype=np.int64)
    if frame_indices.shape != (t,):
        raise FommError(f"boxes_from_blobs: {t} detections but frame_indices of shape {frame_indices.shape}")
    found = np.array([b is not None for b in blobs], dtype=bool)
    raw = np.full((t, 2), np.nan)
    for i, b in enumerate(blobs):
        if b is not None:
            raw[i] = b.centre
    if side is None:
        side = _box_side(np.array([b.major_length for b in blobs if b is not None]), width, height, config)
    headings = np.array([np.nan if b is None else b.heading for b in blobs], dtype=np.float64)
    has_heading = np.isfinite(headings)
    if not found.any():
        log.warning("subject not found in any of %d frames: boxes centred in the frame", t)
        centres = np.tile([(width - 1) / 2.0, (height - 1) / 2.0], (t, 1))
    elif smooth:
        centres = smooth_centres(raw, found, config.smooth_sigma)
    else:
        centres = _interpolate(raw, found)
    if not has_heading.any():
        angles = np.zeros(t)
    elif smooth:
        angles = smooth_headings(headings, has_heading, config.smooth_sigma)
    else:
        vectors = _interpolate(np.stack([np.cos(headings), np.sin(headings)], axis=1), has_heading)
        angles = np.arctan2(vectors[:, 1], vectors[:, 0])
    elongations = [b.elongation for b in blobs if b is not None]
    return SubjectBoxes(
        boxes=_boxes(centres, int(side), width, height),
        centres=centres.astype(np.float32),
        found=found,
        frame_indices=frame_indices,
        side=int(side),
        frame_width=width,
        frame_height=height,
        angles=angles.astype(np.float32),
        elongation=float(np.median(elongations)) if elongations else 1.0,
    )


def boxes_for_frames(
    frames: Iterable[np.ndarray],
    background: Background,
    config: LocalizeConfig = LocalizeConfig(),
    side: int | None = None,
    frame_indices: np.ndarray | None = None,
) -> SubjectBoxes:
    """Boxes for independent images (e.g. labelled frames picked from a video): each frame is
    searched on its own and nothing is smoothed. ``side`` fixes the box side (use the one the model
    was trained with); otherwise it comes from the subjects' sizes."""
    blobs = [find_subject(np.asarray(f), background, config) for f in frames]
    indices = np.arange(len(blobs)) if frame_indices is None else np.asarray(frame_indices)
    return boxes_from_blobs(blobs, indices, background.frame_width, background.frame_height, config, side, smooth=False)


def boxes_for_video(
    path: str | os.PathLike,
    config: LocalizeConfig = LocalizeConfig(),
    background: Background | None = None,
    side: int | None = None,
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
    progress: Progress | None = None,
) -> SubjectBoxes:
    """Follow the subject through a video (or image folder) and box it in every read frame.

    Streams the frames once (plus one sampled pass for the background when ``background`` is None);
    memory is constant apart from a few numbers per frame. ``progress(done, total)`` is called now
    and then.
    """
    path = Path(path)
    info = probe(path)
    if background is None:
        background = estimate_background(path, config)
    if background.frame_width != info.width or background.frame_height != info.height:
        raise FommError(
            f"background size {background.frame_width}x{background.frame_height} differs from the video's "
            f"{info.width}x{info.height} ({path})"
        )
    total = len(range(start, info.num_frames if stop is None else min(stop, info.num_frames), stride))
    blobs: list[Blob | None] = []
    indices: list[int] = []
    previous: np.ndarray | None = None
    scale = float(side) if side is not None else None
    for index, frame in iter_frames(path, start=start, stop=stop, stride=stride):
        blob = find_subject(frame, background, config, previous=previous, scale=scale)
        if blob is not None:
            previous = blob.centre
            if side is None:  # a running scale for the nearest-candidate preference
                length = config.margin * blob.major_length
                scale = length if scale is None else 0.9 * scale + 0.1 * length
        blobs.append(blob)
        indices.append(index)
        if progress is not None and (len(indices) % 50 == 0 or len(indices) == total):
            progress(len(indices), total)
    if not blobs:
        raise FommError(f"no frames read from {path} (start={start}, stop={stop}, stride={stride})")
    boxes = boxes_from_blobs(blobs, np.asarray(indices), info.width, info.height, config, side)
    log.info(
        "localised the subject in %d of %d frames of %s; box side %d px",
        int(boxes.found.sum()), len(boxes), path, boxes.side,
    )
    return boxes


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
        return LocalizeDecision(False, "no subject distinct from the background was found", float("nan"), 0.0, 0, 0.0)
    area_fraction = float(np.median([b.area for b in found])) / float(width * height)
    dominance = float(np.median([b.dominance for b in found]))
    side = _box_side(np.array([b.major_length for b in found]), width, height, config)
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
    return LocalizeDecision(use, reason, area_fraction, found_fraction, side, dominance)


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
        samples, factor, width, height = _sample_reduced(path, config, config.background_samples)
        if (background.frame_width, background.frame_height, background.factor) != (width, height, factor):
            raise FommError(f"the background does not fit {path} ({width}x{height}, reduction {factor})")
    blobs = [_find_in_reduced(sample, background, config) for sample in samples]
    decision = decide_from_blobs(blobs, width, height, config)
    log.info("localisation %s for %s: %s", "on" if decision.use else "off", path, decision.reason)
    return decision


# ----------------------------------------------------------------------------------------------
# Coordinates


def should_align(located: SubjectBoxes, setting: str, config: LocalizeConfig = LocalizeConfig()) -> bool:
    """Resolve an ``align`` setting (``on``/``off``/``auto``) for boxes found in a video: ``auto``
    turns crops to the heading when the subject was found and is elongated enough to have one."""
    if setting not in ("auto", "on", "off"):
        raise FommError(f"align must be auto, on or off, got {setting!r}")
    if setting != "auto":
        return setting == "on"
    return bool(located.found.any()) and located.elongation >= config.align_min_elongation


def box_maps(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where crops cut with ``boxes`` ``(B, 4)`` (or ``(B, 5)``, turned by the fifth value: see
    :func:`fomm_kp.video.crop_frame`) sit in the frame: the centre ``(B, 2)`` in frame pixels and the
    linear map ``(B, 2, 2)`` = R(angle) · diag(width / 2, height / 2) from normalised crop
    coordinates (−1 … 1 across the crop) to frame-pixel offsets from that centre."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] not in (4, 5):
        raise FommError(f"boxes must have shape (B, 4) or (B, 5), got {boxes.shape}")
    half = (boxes[:, 2:4] - boxes[:, 0:2]) / 2.0
    centre = (boxes[:, 0:2] + boxes[:, 2:4]) / 2.0 - 0.5  # pixel-centre convention
    angle = boxes[:, 4] if boxes.shape[1] == 5 else np.zeros(len(boxes))
    cos, sin = np.cos(angle), np.sin(angle)
    linear = np.stack([np.stack([cos * half[:, 0], -sin * half[:, 1]], axis=-1),
                       np.stack([sin * half[:, 0], cos * half[:, 1]], axis=-1)], axis=-2)
    return centre, linear


def _crop_geometry(points: np.ndarray, boxes: np.ndarray, crop_size: int | None):
    """Checked points ``(B, ..., 2)``, and per point the box centre, linear map (:func:`box_maps`)
    and crop side in crop pixels, broadcast to the points' shape."""
    points = np.asarray(points, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    if points.shape[-1] != 2 or boxes.ndim != 2 or boxes.shape[-1] not in (4, 5) or points.shape[0] != boxes.shape[0]:
        raise FommError(f"points (B, ..., 2) and boxes (B, 4 or 5) disagree: {points.shape} vs {boxes.shape}")
    centre, linear = box_maps(boxes)
    extra = (1,) * (points.ndim - 2)
    size = boxes[:, 2:4] - boxes[:, 0:2] if crop_size is None else np.full((len(boxes), 2), float(crop_size))
    shape = (len(boxes),) + extra
    return points, centre.reshape(shape + (2,)), linear.reshape(shape + (2, 2)), size.reshape(shape + (2,))


def crop_to_frame(points: np.ndarray, boxes: np.ndarray, crop_size: int | None = None) -> np.ndarray:
    """Map points from crop pixels to frame pixels.

    Args:
        points: ``(B, ..., 2)`` x, y in pixels of the crop, resized to ``crop_size`` × ``crop_size``
            (``None``: not resized), pixel-centre convention.
        boxes: ``(B, 4)`` the crop boxes ``x0, y0, x1, y1``, or ``(B, 5)`` with the angle each crop
            was turned by (radians; see :func:`fomm_kp.video.crop_frame`).
    Returns float32 ``(B, ..., 2)`` in frame pixels; NaN stays NaN.
    """
    points, centre, linear, size = _crop_geometry(points, boxes, crop_size)
    normalised = (points + 0.5) * 2.0 / size - 1.0
    return (centre + np.einsum("...ij,...j->...i", linear, normalised)).astype(np.float32)


def frame_to_crop(points: np.ndarray, boxes: np.ndarray, crop_size: int | None = None) -> np.ndarray:
    """Inverse of :func:`crop_to_frame`: frame pixels → pixels of the (resized) crop."""
    points, centre, linear, size = _crop_geometry(points, boxes, crop_size)
    normalised = np.einsum("...ij,...j->...i", np.linalg.inv(linear), points - centre)
    return ((normalised + 1.0) * size / 2.0 - 0.5).astype(np.float32)


def mask_not_found(keypoints: np.ndarray, scores: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(T, ..., K, 2)`` → NaN and scores ``(T, ..., K)`` → 0 in frames where the subject
    was not found (``found`` bool ``(T,)``). Returns new arrays."""
    keypoints = np.array(keypoints, dtype=np.float32, copy=True)
    scores = np.array(scores, dtype=np.float32, copy=True)
    found = np.asarray(found, dtype=bool)
    if found.shape != (keypoints.shape[0],) or scores.shape[0] != keypoints.shape[0]:
        raise FommError(f"mask_not_found: found {found.shape} vs keypoints {keypoints.shape}, scores {scores.shape}")
    keypoints[~found] = np.nan
    scores[~found] = 0.0
    return keypoints, scores
