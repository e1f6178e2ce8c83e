"""The subject in one frame: foreground against the background, its largest component, its moments
and heading.

Coordinates: pixels of the original frame, origin at the centre of the top-left pixel, x right,
y down.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import binary_opening, distance_transform_edt
from scipy.ndimage import label as scipy_label
from skimage.morphology import disk

from fomm_kp.config import LocalizeConfig
from fomm_kp.errors import FommError
from fomm_kp.localize.background import Background, reduce_frame

__all__ = ["Blob", "find_subject", "find_in_reduced", "choose_subject", "blob_moments", "foreground_mask", "foreground_mask_and_difference",
           "foreground_parts", "part_blob"]


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


def _check_background(frame: np.ndarray, background: Background) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise FommError(f"expected a frame of shape (H, W, 3), got {frame.shape}")
    if frame.shape[1] != background.frame_width or frame.shape[0] != background.frame_height:
        raise FommError(
            f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the background's "
            f"{background.frame_width}x{background.frame_height}"
        )


_EIGHT = np.ones((3, 3), dtype=bool)


def _label8(mask: np.ndarray) -> np.ndarray:
    """8-connected parts of a 2-D bool mask: ``skimage.measure.label(mask, connectivity=2)``, which
    is this scipy call behind a wrapper (the same labels, without the wrapper's cost)."""
    return scipy_label(mask, structure=_EIGHT)[0]


@lru_cache(maxsize=64)
def _disk(radius: int) -> np.ndarray:
    return disk(radius)


@lru_cache(maxsize=64)
def _disk_offsets(radius: int) -> tuple[tuple[int, int], ...]:
    return tuple((int(dy) - radius, int(dx) - radius) for dy, dx in zip(*np.nonzero(_disk(radius))))


def _opening(mask: np.ndarray, radius: int) -> np.ndarray:
    """``scipy.ndimage.binary_opening(mask, structure=disk(radius))``, the same pixels: for small
    disks as the AND (erosion) then the OR (dilation) of shifted copies, which is several times
    faster; outside the image counts as background, as scipy's border does."""
    offsets = _disk_offsets(radius)
    if len(offsets) > 13:
        return binary_opening(mask, structure=_disk(radius))
    h, w = mask.shape

    def shifted(image: np.ndarray, combine) -> np.ndarray:
        padded = np.zeros((h + 2 * radius, w + 2 * radius), dtype=image.dtype)  # np.pad's zeros, faster
        padded[radius:radius + h, radius:radius + w] = image
        out = None
        for dy, dx in offsets:
            view = padded[radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            out = view.copy() if out is None else combine(out, view, out=out)
        return out

    return shifted(shifted(mask, np.logical_and), np.logical_or)


def _opening_by_distances(inside: np.ndarray, radius: int) -> np.ndarray:
    """:func:`_opening` with ``disk(radius)`` of a mask whose border rows and columns are empty,
    from its distance transform ``inside`` (distance of each pixel to the nearest empty one): a
    pixel survives the erosion when no empty pixel lies within the disk (squared distance, an
    integer, above ``radius²``), and the dilation takes the pixels within the disk of a survivor.
    The same pixels as scipy's opening (an empty border stands for the outside), two distance
    transforms in place of two passes over every offset of the disk."""
    limit = np.sqrt(radius * radius + 0.5)  # squared distances are integers: no rounding at the edge
    eroded = inside > limit
    if not eroded.any():
        return eroded
    return distance_transform_edt(~eroded) < limit


def exact_median(values: np.ndarray, every: int = 16, spread: int = 48) -> float:
    """``float(np.median(values))``, the same value, without partitioning every value: bounds
    around the middle are read from every ``every``-th value (``spread`` ranks either side), checked
    by counting, and only the values between them are partitioned. When the bounds do not hold
    (or a value is NaN) the whole array is partitioned as :func:`numpy.median` does."""
    flat = np.asarray(values).ravel()
    n = flat.size
    sample = flat[::every]
    if n < 8 * every or sample.size <= 2 * spread + 1:
        return float(np.median(flat))
    middle = (n - 1) // 2, n // 2  # the rank(s) of the middle value(s), 0-based
    at = sample.size * middle[0] // n
    ranks = max(0, at - spread), min(sample.size - 1, at + spread)
    lo, hi = np.partition(sample, ranks)[list(ranks)]
    below, above = np.count_nonzero(flat < lo), np.count_nonzero(flat > hi)
    window = flat[(flat >= lo) & (flat <= hi)]
    if below > middle[0] or n - above <= middle[1] or below + above + window.size != n:
        return float(np.median(flat))
    wanted = sorted({middle[0] - below, middle[1] - below})
    return float(np.mean(np.partition(window, wanted)[wanted]))  # numpy's median: the mean of the middle one or two


@lru_cache(maxsize=8)
def _pixel_coordinates(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flattened x and y of every pixel of an image of ``shape``, as float64 weights."""
    ys, xs = np.indices(shape)
    return xs.ravel().astype(np.float64), ys.ravel().astype(np.float64)


def foreground_mask_and_difference(reduced: np.ndarray, background: Background, config: LocalizeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Difference image (h, w) and cleaned foreground mask (h, w) at work resolution."""
    change = np.abs(reduced - background.image)
    diff = np.maximum(np.maximum(change[:, :, 0], change[:, :, 1]), change[:, :, 2])  # max over channels
    median = exact_median(diff)
    sigma = 1.4826 * exact_median(np.abs(diff - median))
    threshold = max(median + config.threshold_sigmas * sigma, config.min_contrast)
    mask = diff > threshold
    if config.opening_radius > 0:
        mask = _opening(mask, config.opening_radius)
    return diff, mask


def foreground_mask(reduced: np.ndarray, background: Background, config: LocalizeConfig) -> np.ndarray:
    """bool ``(h, w)``: where a reduced frame differs from the background (cleaned), work resolution."""
    return foreground_mask_and_difference(reduced, background, config)[1]


def _components(mask: np.ndarray, diff: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Label the mask; per component (index 1..n): area, mass (sum of diff), centroid x, y. Only the
    foreground's pixels are counted (in raster order, as over the whole image: the same sums); label
    0, the background, gets zeros."""
    labels = _label8(mask)
    n = int(labels.max())
    at = np.flatnonzero(mask)
    flat = labels.ravel()[at]
    xs, ys = _pixel_coordinates(mask.shape)
    area = np.bincount(flat, minlength=n + 1).astype(np.float64)
    mass = np.bincount(flat, weights=diff.ravel()[at], minlength=n + 1)
    safe = np.maximum(area, 1.0)
    cx = np.bincount(flat, weights=xs[at], minlength=n + 1) / safe
    cy = np.bincount(flat, weights=ys[at], minlength=n + 1) / safe
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
    return find_in_reduced(reduce_frame(frame, background.factor), background, config, previous, scale)


def find_in_reduced(
    reduced: np.ndarray, background: Background, config: LocalizeConfig, previous: np.ndarray | None = None,
    scale: float | None = None,
) -> Blob | None:
    """:func:`find_subject` on a frame already reduced by ``background.factor``."""
    return choose_subject(foreground_parts(reduced, background, config), background, config, previous, scale)


def choose_subject(
    parts: tuple, background: Background, config: LocalizeConfig, previous: np.ndarray | None = None,
    scale: float | None = None,
) -> Blob | None:
    """:func:`find_in_reduced` from the frame's :func:`foreground_parts` (which do not depend on
    ``previous``: a decoding thread can find them while the caller follows the subject)."""
    f = background.factor
    diff, labels, area, mass, cx, cy = parts
    min_area = config.min_area_fraction * background.frame_width * background.frame_height / (f * f)
    candidates = (np.nonzero(area[1:] >= max(min_area, 1.0))[0] + 1).tolist()
    if not candidates:
        return None
    best = candidates[int(np.argmax(mass[candidates]))]  # the first of equal masses, as max() picks
    if previous is not None and scale is not None and np.all(np.isfinite(previous)):
        px, py = (float(previous[0]) + 0.5) / f - 0.5, (float(previous[1]) + 0.5) / f - 0.5
        reach = config.max_jump_fraction * scale / f
        near = [i for i in candidates if np.hypot(cx[i] - px, cy[i] - py) <= reach]
        if near:
            nearest = max(near, key=lambda i: mass[i])
            if mass[best] <= 2.0 * mass[nearest]:
                best = nearest
    return part_blob(labels == best, diff, f, float(mass[best] / mass[1:].sum()), config)


def foreground_parts(reduced: np.ndarray, background: Background, config: LocalizeConfig,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The foreground of a reduced frame in separate parts: ``(diff (h, w), labels (h, w), and per
    label 0..n: area, mass, centroid x, centroid y)`` at work resolution (label 0 is the background,
    not measured: zeros)."""
    diff, mask = foreground_mask_and_difference(reduced, background, config)
    return (diff, *_components(mask, diff))


def part_blob(component: np.ndarray, diff: np.ndarray, factor: int, dominance: float, config: LocalizeConfig) -> Blob:
    """The :class:`Blob` of one foreground part (bool mask ``(h, w)`` at work resolution, reduced by
    ``factor``): moments of its core, heading from its appendages."""
    ys, xs = _core(component, config.core_fraction)
    whole_ys, whole_xs = np.nonzero(component)
    return _blob_from_pixels(xs, ys, diff[ys, xs], factor, dominance, whole_xs, whole_ys, config.axis_min_elongation)


def _core(component: np.ndarray, core_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (ys, xs) of a component without its thin appendages: an opening with a
    disk of radius ``core_fraction`` × the component's largest inscribed radius, keeping the largest
    remaining part (the whole component when nothing remains)."""
    ys, xs = np.nonzero(component)
    if core_fraction <= 0:
        return ys, xs
    y0, x0 = ys.min(), xs.min()
    local = np.zeros((ys.max() - y0 + 3, xs.max() - x0 + 3), dtype=bool)
    local[ys - y0 + 1, xs - x0 + 1] = True
    inside = distance_transform_edt(local)
    radius = int(round(core_fraction * float(inside.max())))
    if radius < 1:
        return ys, xs
    core = _opening(local, radius) if radius <= 2 else _opening_by_distances(inside, radius)
    if not core.any():
        return ys, xs
    parts = _label8(core)
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
