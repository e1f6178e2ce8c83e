"""Motion transfer maths: the keypoints that drive a source image, and the :class:`Animator` that renders it.

Relative transfer (the default, as in FOMM) moves the source keypoints by the driving keypoints'
displacement from a reference driving frame, scaled by ``sqrt(hull area of the source keypoints /
hull area of the reference keypoints)``, and composes the jacobians as
``J = J_drv · J_ref⁻¹ · J_src``. Absolute transfer uses the driving keypoints as they are, which
only suits a source of the same identity, pose and framing. The learned background/camera motion
is switched off (identity) at animation time: it describes the training clip's camera, not the
driving video's.

The maths (:func:`transfer_keypoints`, :func:`convex_hull_area`, :func:`movement_scale`,
:func:`best_frame_index`) works on :class:`~fomm_kp.models.KeypointOutput` tensors and numpy arrays,
so it is tested without a network or a video. All coordinates are normalised to [-1, 1] (x first)
of the model's square input; frames at the boundary are uint8 ``(H, W, 3)``.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch

from fomm_kp.errors import FommError
from fomm_kp.geometry import inverse_2x2, to_pixels
from fomm_kp.images import frames_to_images, images_to_frames
from fomm_kp.models import FOMM, KeypointOutput
from fomm_kp.viz import draw_keypoints, image_row, keypoint_colors

__all__ = [
    "convex_hull_area", "movement_scale", "transfer_keypoints", "best_frame_index", "index_keypoints",
    "reference_keypoints", "points_in_panel", "Rendered", "Animator", "animation_grid",
]

log = logging.getLogger(__name__)


def convex_hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of ``points`` ``(K, 2)`` (0 for fewer than 3 or collinear points).

    Andrew's monotone chain, then the shoelace formula; NaN points are ignored.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise FommError(f"points must have shape (K, 2), got {points.shape}")
    points = points[np.isfinite(points).all(axis=1)]
    points = np.unique(points, axis=0)  # sorted by x, then y
    if len(points) < 3:
        return 0.0

    def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))

    lower: list[np.ndarray] = []
    for p in points:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[np.ndarray] = []
    for p in points[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = np.array(lower[:-1] + upper[:-1])
    if len(hull) < 3:
        return 0.0
    x, y = hull[:, 0], hull[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def movement_scale(source_keypoints: np.ndarray, reference_keypoints: np.ndarray) -> float:
    """FOMM's adaptive movement scale ``sqrt(area(hull(source)) / area(hull(reference)))``.

    Both ``(K, 2)``. A degenerate reference hull (zero area) gives 1.0, with a warning in the log.
    """
    source_area = convex_hull_area(source_keypoints)
    reference_area = convex_hull_area(reference_keypoints)
    if reference_area <= 1e-12 or source_area <= 1e-12:
        log.warning("keypoint hull is degenerate (areas %.3g, %.3g): movement scale 1", source_area, reference_area)
        return 1.0
    return float(np.sqrt(source_area / reference_area))


def _check_keypoints(kp: KeypointOutput, name: str) -> None:
    if kp.keypoints.ndim != 3 or kp.keypoints.shape[-1] != 2:
        raise FommError(f"{name}.keypoints must be (B, K, 2), got {tuple(kp.keypoints.shape)}")
    if kp.jacobians.shape != (*kp.keypoints.shape, 2):
        raise FommError(f"{name}.jacobians must be (B, K, 2, 2), got {tuple(kp.jacobians.shape)}")


def transfer_keypoints(
    kp_source: KeypointOutput,
    kp_driving: KeypointOutput,
    kp_reference: KeypointOutput | None = None,
    relative: bool = True,
    relative_jacobian: bool = True,
    adapt_scale: bool = True,
    scale: float | None = None,
) -> KeypointOutput:
    """The keypoints that drive the source image: FOMM's absolute or relative motion transfer.

    Args:
        kp_source: keypoints of the source image, ``(1, K, 2)`` (or ``(B, K, 2)``).
        kp_driving: keypoints of B driving frames, ``(B, K, 2)``, jacobians ``(B, K, 2, 2)``.
        kp_reference: keypoints of the reference driving frame ``(1, K, 2)`` (the first frame,
            or the best-matching one); required when ``relative``.
        relative: move the source keypoints by the driving displacement from the reference
            (``kp_src + s · (kp_drv − kp_ref)``) instead of using the driving keypoints as they are.
        relative_jacobian: with ``relative``, jacobians ``J_drv · J_ref⁻¹ · J_src``.
        adapt_scale: with ``relative``, ``s`` = :func:`movement_scale` of source and reference
            (computed on the first batch element); else ``s = 1``.
        scale: with ``relative``, use this ``s`` instead (a caller animating many batches
            computes it once).

    Returns:
        A :class:`KeypointOutput` with keypoints ``(B, K, 2)`` and jacobians ``(B, K, 2, 2)``; its
        heatmaps, covariances and scores are the driving frames' (the motion networks do not use them).
    """
    _check_keypoints(kp_source, "kp_source")
    _check_keypoints(kp_driving, "kp_driving")
    if kp_source.keypoints.shape[1] != kp_driving.keypoints.shape[1]:
        raise FommError(
            f"source has {kp_source.keypoints.shape[1]} keypoints, driving {kp_driving.keypoints.shape[1]}"
        )
    if not relative:
        return kp_driving
    if kp_reference is None:
        raise FommError("relative motion transfer needs the reference driving keypoints")
    _check_keypoints(kp_reference, "kp_reference")
    if scale is None:
        scale = movement_scale(
            kp_source.keypoints[0].detach().float().cpu().numpy(), kp_reference.keypoints[0].detach().float().cpu().numpy()
        ) if adapt_scale else 1.0
    displacement = (kp_driving.keypoints - kp_reference.keypoints) * scale
    keypoints = kp_source.keypoints + displacement
    if relative_jacobian:
        change = kp_driving.jacobians @ inverse_2x2(kp_reference.jacobians)
        jacobians = change @ kp_source.jacobians
    else:
        jacobians = kp_source.jacobians.expand_as(kp_driving.jacobians)
    return kp_driving._replace(keypoints=keypoints, jacobians=jacobians)


def _normalised_shape(points: np.ndarray) -> np.ndarray:
    """``(K, 2)`` points centred on their mean and divided by the square root of their hull area."""
    centred = points - points.mean(axis=0, keepdims=True)
    area = convex_hull_area(points)
    return centred / np.sqrt(area) if area > 1e-12 else centred


def best_frame_index(source_keypoints: np.ndarray, driving_keypoints: np.ndarray) -> int:
    """Index of the driving frame whose keypoint configuration best matches the source's.

    Keypoint sets ``(K, 2)`` (source) and ``(T, K, 2)`` (driving) are centred and normalised by
    the square root of their hull area (FOMM's ``find_best_frame``, here with the model's own
    keypoints rather than face landmarks), then compared by the sum of squared distances.
    """
    source_keypoints = np.asarray(source_keypoints, dtype=np.float64)
    driving_keypoints = np.asarray(driving_keypoints, dtype=np.float64)
    if driving_keypoints.ndim != 3 or driving_keypoints.shape[1:] != source_keypoints.shape:
        raise FommError(
            f"driving keypoints {driving_keypoints.shape} do not match source keypoints {source_keypoints.shape}"
        )
    if len(driving_keypoints) == 0:
        raise FommError("no driving frames to choose the best frame from")
    reference = _normalised_shape(source_keypoints)
    distances = [float(((_normalised_shape(kp) - reference) ** 2).sum()) for kp in driving_keypoints]
    return int(np.argmin(distances))


def index_keypoints(kp: KeypointOutput, index: slice | int) -> KeypointOutput:
    if isinstance(index, int):
        index = slice(index, index + 1)
    return KeypointOutput(*(t[index] for t in kp))


def reference_keypoints(keypoints: torch.Tensor, jacobians: torch.Tensor) -> KeypointOutput:
    """A reference :class:`KeypointOutput` from one frame's keypoints ``(K, 2)`` and jacobians ``(K, 2, 2)``.

    Only keypoints and jacobians enter the transfer; the other fields are empty placeholders.
    """
    k = keypoints.shape[0]
    empty = keypoints.new_zeros(1, k, 0, 0)
    return KeypointOutput(keypoints[None], jacobians[None], empty, keypoints.new_zeros(1, k, 2, 2), keypoints.new_zeros(1, k))


class Rendered(NamedTuple):
    """What :meth:`Animator.render` gives for B driving frames, at the model's image size S."""

    prediction: torch.Tensor  # (B, 3, S, S) in [0, 1]
    deformed: torch.Tensor  # (B, 3, S, S): the source warped by the dense flow alone
    keypoints: KeypointOutput  # the transferred keypoints (B, K, 2) that drove it
    flow: torch.Tensor  # (B, h, w, 2) dense flow, normalised coordinates
    visibility: torch.Tensor | None  # (B, 1, S, S) share of the warped source (see GeneratorOutput)


class Animator:
    """Animates one source image with a FOMM's detector, dense-motion network and generator.

    ``source`` is uint8 ``(S, S, 3)`` at the network's image size S (see :func:`load_source`).
    Call :meth:`detect` on driving frames, :meth:`set_reference` once (relative transfer), then
    :meth:`render`. The network is used as it is (put it in eval mode first).
    """

    def __init__(
        self, network: FOMM, source: np.ndarray, relative: bool = True, adapt_scale: bool = True,
        relative_jacobian: bool = True,
    ) -> None:
        size = network.config.image_size
        if source.shape != (size, size, 3) or source.dtype != np.uint8:
            raise FommError(f"source must be uint8 ({size}, {size}, 3), got {source.dtype} {source.shape}")
        self.network = network
        self.device = next(network.parameters()).device
        self.size = size
        self.relative = relative
        self.adapt_scale = adapt_scale
        self.relative_jacobian = relative_jacobian
        self.source_image = frames_to_images(np.array(source[None]), self.device)
        with torch.no_grad():
            self.kp_source = network.detector(self.source_image)
        self.kp_reference: KeypointOutput | None = None
        self.scale = 1.0

    @torch.no_grad()
    def detect(self, frames: np.ndarray) -> KeypointOutput:
        """Keypoints of uint8 driving frames ``(B, S, S, 3)``."""
        return self.network.detector(frames_to_images(frames, self.device))

    def set_reference(self, kp_reference: KeypointOutput) -> None:
        """The driving frame ``(1, K, ...)`` whose pose corresponds to the source's."""
        self.kp_reference = index_keypoints(kp_reference, 0)
        if self.relative and self.adapt_scale:
            self.scale = movement_scale(self.kp_source.keypoints[0].cpu().numpy(), self.kp_reference.keypoints[0].cpu().numpy())
            log.info("movement scale %.3f", self.scale)

    def transfer(self, kp_driving: KeypointOutput) -> KeypointOutput:
        """Keypoints ``(B, K, 2)`` that drive the source for these driving keypoints."""
        if self.relative and self.kp_reference is None:
            raise FommError("relative animation needs a reference frame: call set_reference first")
        return transfer_keypoints(self.kp_source, kp_driving, self.kp_reference, self.relative,
                                  self.relative_jacobian, self.adapt_scale, scale=self.scale)

    @torch.no_grad()
    def render(self, kp_driving: KeypointOutput) -> Rendered:
        """Animate the source for B driving keypoint sets (:class:`Rendered`, at the model's size).

        The background slot is the identity (``background=None``).
        """
        kp_new = self.transfer(kp_driving)
        b = kp_new.keypoints.shape[0]
        source = self.source_image.expand(b, -1, -1, -1)
        kp_source = KeypointOutput(*(t.expand(b, *t.shape[1:]) for t in self.kp_source))
        out, motion = self.network.render(source, kp_source, kp_new, background=None)
        return Rendered(out.prediction, out.deformed, kp_new, motion.flow, out.visibility)


def points_in_panel(keypoints: torch.Tensor, width: int, height: int) -> np.ndarray:
    """Normalised ``(K, 2)`` keypoints → pixels of a ``width × height`` panel."""
    return to_pixels(keypoints.detach().float().cpu(), width, height).numpy()


@torch.no_grad()
def animation_grid(network: FOMM, source: np.ndarray, driving: np.ndarray, relative: bool = True) -> np.ndarray:
    """A picture of ``source`` animated by a few ``driving`` frames (training previews).

    ``source`` uint8 ``(S, S, 3)``, ``driving`` uint8 ``(N, S, S, 3)``. Top row: the source and
    the driving frames with their keypoints; bottom row: a blank cell under the source, then the
    animations with the transferred keypoints.
    Relative motion is measured from the first driving frame. Returns uint8 ``(2 S + 2, ...)``.
    """
    if driving.ndim != 4 or driving.shape[1:] != source.shape:
        raise FommError(f"driving frames must be (N, {', '.join(map(str, source.shape))}), got {driving.shape}")
    animator = Animator(network, source, relative=relative)
    kp_driving = animator.detect(driving)
    if relative:
        animator.set_reference(index_keypoints(kp_driving, 0))
    rendered = animator.render(kp_driving)
    prediction, kp_new = rendered.prediction, rendered.keypoints
    size = source.shape[0]
    colors = keypoint_colors(kp_new.keypoints.shape[1])

    def points(kp: torch.Tensor) -> np.ndarray:
        return points_in_panel(kp, size, size)

    top = [draw_keypoints(source, points(animator.kp_source.keypoints[0]), colors)]
    top += [draw_keypoints(frame, points(kp), colors) for frame, kp in zip(driving, kp_driving.keypoints)]
    bottom = [np.full_like(source, 255)]
    bottom += [draw_keypoints(frame, points(kp), colors) for frame, kp in zip(images_to_frames(prediction), kp_new.keypoints)]
    spacer = np.full((2, image_row(top).shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([image_row(top), spacer, image_row(bottom)], axis=0)
