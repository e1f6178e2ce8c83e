"""Motion transfer: animate a still image with the motion of a driving video (FOMM's demo).

Two layers, kept apart so that the geometry can be tested without a network or a video:

* the keypoint-transfer math (:func:`transfer_keypoints`, :func:`convex_hull_area`,
  :func:`movement_scale`, :func:`best_frame_index`), on :class:`~fomm_kp.models.KeypointOutput`
  tensors and numpy arrays;
* the rendering loop (:class:`Animator`, :func:`animate`), which streams the driving video in
  batches through the detector, the dense-motion network and the generator, and writes mp4/gif.

Relative transfer (the default, as in FOMM) moves the source keypoints by the driving keypoints'
displacement from a reference driving frame, scaled by ``sqrt(hull area of the source keypoints /
hull area of the reference keypoints)``, and composes the jacobians as
``J = J_drv · J_ref⁻¹ · J_src``. Absolute transfer uses the driving keypoints as they are, which
only suits a source of the same identity, pose and framing. The learned background/camera motion
is switched off (identity) at animation time: it describes the training clip's camera, not the
driving video's.

All coordinates inside are normalised to [-1, 1] (x first) of the model's square input; frames at
the boundary are uint8 ``(H, W, 3)``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from fomm_kp.errors import FommError
from fomm_kp.geometry import inverse_2x2, to_pixels
from fomm_kp.runtime.model import Model, frames_to_images
from fomm_kp.models import FOMM, KeypointOutput
from fomm_kp.video import IMAGE_SUFFIXES, VideoWriter, crop_frame, iter_frames, probe, read_frame_at, read_image, resize_frame
from fomm_kp.viz import draw_keypoints, image_row, keypoint_colors

__all__ = [
    "convex_hull_area",
    "movement_scale",
    "transfer_keypoints",
    "best_frame_index",
    "Animator",
    "AnimationResult",
    "source_view",
    "load_source",
    "model_crops",
    "animate",
    "animation_grid",
    "animation_demo",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------
# Keypoint-transfer math.


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


# --------------------------------------------------------------------------------------------
# Rendering.


def _index_keypoints(kp: KeypointOutput, index: slice | int) -> KeypointOutput:
    if isinstance(index, int):
        index = slice(index, index + 1)
    return KeypointOutput(*(t[index] for t in kp))


def _reference(keypoints: torch.Tensor, jacobians: torch.Tensor) -> KeypointOutput:
    """A reference :class:`KeypointOutput` from one frame's keypoints ``(K, 2)`` and jacobians ``(K, 2, 2)``.

    Only keypoints and jacobians enter the transfer; the other fields are empty placeholders.
    """
    k = keypoints.shape[0]
    empty = keypoints.new_zeros(1, k, 0, 0)
    return KeypointOutput(keypoints[None], jacobians[None], empty, keypoints.new_zeros(1, k, 2, 2), keypoints.new_zeros(1, k))


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """float ``(B, 3, H, W)`` in [0, 1] → uint8 ``(B, H, W, 3)``."""
    return (images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


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
        self.kp_reference = _index_keypoints(kp_reference, 0)
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
    def render(self, kp_driving: KeypointOutput) -> tuple[torch.Tensor, torch.Tensor, KeypointOutput]:
        """Animate the source for B driving keypoint sets.

        Returns ``(prediction (B, 3, S, S), deformed (B, 3, S, S), transferred keypoints)``;
        ``deformed`` is the source warped by the dense flow alone. The background slot is the
        identity (``background=None``).
        """
        kp_new = self.transfer(kp_driving)
        b = kp_new.keypoints.shape[0]
        source = self.source_image.expand(b, -1, -1, -1)
        kp_source = KeypointOutput(*(t.expand(b, *t.shape[1:]) for t in self.kp_source))
        prediction, deformed, _ = self.network.animate(source, kp_source, kp_new, background=None)
        return prediction, deformed, kp_new


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _model_boxes(model: Model, video: Path) -> dict[int, np.ndarray] | None:
    """Per-frame crop boxes the model was trained with (fixed crop or localisation), or None."""
    if model.meta.get("fixed_crop"):
        box = np.asarray(model.meta["fixed_crop"], dtype=np.float64)
        return {i: box for i in range(probe(video).num_frames)}
    if not model.meta.get("localized"):
        return None
    from fomm_kp.api import subject_boxes

    config = dataclasses.replace(model.config, data=dataclasses.replace(model.config.data, localize="on"))
    located = subject_boxes(video, config, None, side=int(round(model.meta["box_side"])),
                            align=bool(model.meta.get("aligned", False)))
    if located is None:
        return None
    return {int(i): b for i, b in zip(located[0], located[1])}


def source_view(
    model: Model, source: str | os.PathLike | np.ndarray, frame: int = 0, boxes: dict[int, np.ndarray] | None = None,
) -> np.ndarray:
    """The source region at its native resolution: uint8 ``(H, W, 3)``.

    ``source`` is an image file, a video (its frame ``frame`` is used) or a uint8 ``(H, W, 3)``
    array. For a model trained on subject crops, a video frame is cropped like the training
    frames (an image is used whole); ``boxes`` (frame index → box) reuses boxes already found.
    """
    if isinstance(source, np.ndarray):
        image = source
    else:
        path = Path(source)
        if not path.exists():
            raise FommError(f"source not found: {path}")
        if _is_image(path):
            image = read_image(path)
            if model.meta.get("localized"):
                log.warning("the model was trained on subject crops; the source image %s is used whole", path)
        else:
            info = probe(path)
            if not 0 <= frame < info.num_frames:
                raise FommError(f"source frame {frame} is out of range for {path} ({info.num_frames} frames)")
            image = read_frame_at(path, frame)
            boxes = boxes if boxes is not None else _model_boxes(model, path)
            if boxes is not None:
                image = crop_frame(image, boxes[frame])
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 2:
        raise FommError(f"source image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return image


def load_source(model: Model, source: str | os.PathLike | np.ndarray, frame: int = 0) -> np.ndarray:
    """The source as the model sees it: :func:`source_view` resized to uint8 ``(S, S, 3)``.

    Any size is accepted; the aspect ratio is not kept, as in training.
    """
    return resize_frame(source_view(model, source, frame), model.config.model.image_size)


def model_crops(
    model: Model, video: str | os.PathLike, start: int = 0, stop: int | None = None, stride: int = 1,
    boxes: dict[int, np.ndarray] | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Stream ``(index, crop (S, S, 3), view)`` for the frames of ``video``.

    ``crop`` is what the model sees (the whole frame, or its training crop box, resized to S × S);
    ``view`` is the same region at its native resolution and aspect ratio, for display. ``boxes``
    (frame index → box) skips finding the model's boxes again when the caller already has them.
    """
    size = model.config.model.image_size
    if boxes is None:
        boxes = _model_boxes(model, Path(video))
    for index, frame in iter_frames(video, start=start, stop=stop, stride=stride):
        view = frame if boxes is None else crop_frame(frame, boxes[index])
        yield index, resize_frame(view, size), view


@dataclass(frozen=True)
class AnimationResult:
    """What :func:`animate` wrote and used.

    ``keypoints`` ``(T, K, 2)``: the transferred keypoints driving each result frame, in pixels
    of the result panel; ``source_keypoints`` ``(K, 2)`` likewise; ``reference_frame``: the
    driving frame index the relative motion is measured from (0, or the best frame).
    """

    path: Path
    num_frames: int
    fps: float
    reference_frame: int
    movement_scale: float
    frame_size: tuple[int, int]  # (width, height) of the written frames
    keypoints: np.ndarray
    source_keypoints: np.ndarray


def _panel_size(height: int, aspect: float) -> tuple[int, int]:
    """(width, height) of a panel of this height and width/height aspect, both even."""
    height = max(2, int(round(height / 2)) * 2)
    width = max(2, int(round(height * aspect / 2)) * 2)
    return width, height


def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="constant", constant_values=255)
    return frame


def _points_in_panel(keypoints: torch.Tensor, width: int, height: int) -> np.ndarray:
    """Normalised ``(K, 2)`` keypoints → pixels of a ``width × height`` panel."""
    return to_pixels(keypoints.detach().float().cpu(), width, height).numpy()


def animate(
    source: str | os.PathLike | np.ndarray,
    driving: str | os.PathLike,
    model: Model | str | os.PathLike,
    out: str | os.PathLike,
    relative: bool = True,
    adapt_scale: bool = True,
    best_frame: bool = False,
    source_frame: int = 0,
    side_by_side: bool = False,
    show_keypoints: bool = False,
    size: int | None = None,
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> AnimationResult:
    """Animate ``source`` with the motion of the ``driving`` video and write ``out`` (.mp4 or .gif).

    Args:
        source: image file, video (frame ``source_frame`` is used) or uint8 ``(H, W, 3)`` array.
        driving: the driving video; streamed in batches of ``batch_size`` frames.
        model: a :class:`~fomm_kp.inference.Model` or a checkpoint path.
        relative: relative motion transfer (default) rather than absolute keypoints.
        adapt_scale: scale the relative motion by the keypoint hulls' size ratio.
        best_frame: measure the relative motion from the driving frame whose keypoints best match
            the source's (the frames before it animate the motion backwards, those after it
            forwards) instead of from the first frame. Costs one extra detector pass.
        side_by_side: write source | driving | result panels instead of the result alone.
        show_keypoints: draw keypoints (source, driving and transferred) on the panels.
        size: height of the result panel in pixels (default: the model's image size). The result
            keeps the source's aspect ratio, the driving panel the driving video's.
        start, stop, stride: which driving frames to use.
        progress: ``progress(done, total)`` after each batch.
    """
    if not isinstance(model, Model):
        model = Model.load(model)
    if batch_size < 1:
        raise FommError(f"batch_size must be at least 1, got {batch_size}")
    driving = Path(driving)
    info = probe(driving)
    last = info.num_frames if stop is None else min(stop, info.num_frames)
    total = len(range(start, last, stride))
    if total == 0:
        raise FommError(f"no driving frames in {driving} (start={start}, stop={stop}, frames={info.num_frames})")
    boxes = _model_boxes(model, driving)
    same_video = not isinstance(source, np.ndarray) and Path(source).resolve() == driving.resolve()
    view = source_view(model, source, source_frame, boxes if same_video else None)
    source_image = resize_frame(view, model.config.model.image_size)
    animator = Animator(model.network, source_image, relative=relative, adapt_scale=adapt_scale)

    reference_index = 0
    if best_frame:
        if not relative:
            raise FommError("--best-frame applies to relative motion transfer only")
        keypoints, jacobians = [], []
        batch: list[np.ndarray] = []
        for _, crop, _ in model_crops(model, driving, start, last, stride, boxes):
            batch.append(crop)
            if len(batch) >= batch_size:
                kp = animator.detect(np.stack(batch))
                keypoints.append(kp.keypoints), jacobians.append(kp.jacobians)
                batch.clear()
        if batch:
            kp = animator.detect(np.stack(batch))
            keypoints.append(kp.keypoints), jacobians.append(kp.jacobians)
        all_keypoints, all_jacobians = torch.cat(keypoints), torch.cat(jacobians)
        reference_index = best_frame_index(animator.kp_source.keypoints[0].cpu().numpy(), all_keypoints.cpu().numpy())
        log.info("best-matching driving frame: %d", start + reference_index * stride)
        animator.set_reference(_reference(all_keypoints[reference_index], all_jacobians[reference_index]))

    height = size or model.config.model.image_size
    result_w, result_h = _panel_size(height, view.shape[1] / view.shape[0])
    colors = keypoint_colors(model.num_keypoints)
    source_panel = resize_frame(view, (result_w, result_h))
    src_kp_px = _points_in_panel(animator.kp_source.keypoints[0], result_w, result_h)
    if show_keypoints:
        source_panel = draw_keypoints(source_panel, src_kp_px, colors)
    transferred: list[np.ndarray] = []
    driving_width: int | None = None
    frame_size = (0, 0)
    done = 0

    def flush(crops: list[np.ndarray], views: list[np.ndarray]) -> None:
        nonlocal done, driving_width, frame_size
        kp_driving = animator.detect(np.stack(crops))
        if relative and animator.kp_reference is None:  # the first driving frame is the reference
            animator.set_reference(_index_keypoints(kp_driving, 0))
        prediction, _, kp_new = animator.render(kp_driving)
        for i, result in enumerate(_to_uint8(prediction)):
            result = resize_frame(result, (result_w, result_h))
            kp_px = _points_in_panel(kp_new.keypoints[i], result_w, result_h)
            transferred.append(kp_px)
            if show_keypoints:
                result = draw_keypoints(result, kp_px, colors)
            if side_by_side:
                if driving_width is None:
                    driving_width = _panel_size(result_h, views[i].shape[1] / views[i].shape[0])[0]
                panel = resize_frame(views[i], (driving_width, result_h))
                if show_keypoints:
                    drv_px = _points_in_panel(kp_driving.keypoints[i], driving_width, result_h)
                    panel = draw_keypoints(panel, drv_px, colors)
                result = image_row([source_panel, panel, result])
            result = _even(result)
            frame_size = (result.shape[1], result.shape[0])
            writer.write(result)
        done += len(crops)
        if progress is not None:
            progress(done, total)

    writer = VideoWriter(out, info.fps / stride)
    try:
        crops: list[np.ndarray] = []
        views: list[np.ndarray] = []
        for _, crop, frame_view in model_crops(model, driving, start, last, stride, boxes):
            crops.append(crop)
            views.append(frame_view if side_by_side else crop)
            if len(crops) >= batch_size:
                flush(crops, views)
                crops, views = [], []
        if crops:
            flush(crops, views)
    except BaseException:
        writer.close(success=False)
        raise
    writer.close()
    return AnimationResult(
        path=Path(out), num_frames=done, fps=writer.fps, reference_frame=start + reference_index * stride,
        movement_scale=animator.scale, frame_size=frame_size,
        keypoints=np.stack(transferred).astype(np.float32), source_keypoints=src_kp_px.astype(np.float32),
    )


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
        animator.set_reference(_index_keypoints(kp_driving, 0))
    prediction, _, kp_new = animator.render(kp_driving)
    size = source.shape[0]
    colors = keypoint_colors(kp_new.keypoints.shape[1])

    def points(kp: torch.Tensor) -> np.ndarray:
        return _points_in_panel(kp, size, size)

    top = [draw_keypoints(source, points(animator.kp_source.keypoints[0]), colors)]
    top += [draw_keypoints(frame, points(kp), colors) for frame, kp in zip(driving, kp_driving.keypoints)]
    bottom = [np.full_like(source, 255)]
    bottom += [draw_keypoints(frame, points(kp), colors) for frame, kp in zip(_to_uint8(prediction), kp_new.keypoints)]
    spacer = np.full((2, image_row(top).shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([image_row(top), spacer, image_row(bottom)], axis=0)


def animation_demo(
    model: Model, video: str | os.PathLike, out_dir: str | os.PathLike, max_frames: int = 150,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Animate a frame of ``video`` with the motion of another part of it (``fomm-kp demo``).

    The source is the frame at 10 % of the clip; the driving frames start at its middle (at most
    ``max_frames`` of them; about 0.3 s per frame at 128 px on two CPU cores). Writes
    ``animation.mp4`` (source | driving | result, with keypoints) into ``out_dir`` and returns
    ``{"animation": path}``.
    """
    info = probe(video)
    if info.num_frames < 4:
        raise FommError(f"{video} has {info.num_frames} frames: the animation demo needs at least 4")
    out = Path(out_dir) / "animation.mp4"
    start = info.num_frames // 2
    animate(video, video, model, out, source_frame=info.num_frames // 10, start=start,
            stop=min(info.num_frames, start + max_frames), side_by_side=True, show_keypoints=True,
            size=max(128, model.config.model.image_size), progress=progress)
    return {"animation": out}
