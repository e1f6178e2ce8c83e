"""Animate a still image with the motion of a driving video (FOMM's demo): :func:`animate`.

The driving video is streamed in batches through the detector, the dense-motion network and the
generator (:class:`~fomm_kp.animation.transfer.Animator`), and the results are written to mp4/gif,
alone or beside the source and driving panels. A model trained on crops sees the driving frames
(and a source taken from a video) cropped as in training (:func:`fomm_kp.localize.crop_rule.model_crops`);
the result is written at the source region's own size (or ``PanelOptions.size``): the networks run at
the model's image size and :func:`fomm_kp.animation.upsample.full_resolution` brings their output to
the source's resolution, taking the detail of visible parts from the full-resolution source.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from fomm_kp.animation.transfer import (
    Animator,
    Rendered,
    best_frame_index,
    index_keypoints,
    points_in_panel,
    reference_keypoints,
)
from fomm_kp.animation.upsample import full_resolution
from fomm_kp.errors import FommError
from fomm_kp.images import frames_to_images, images_to_frames
from fomm_kp.localize.crop_rule import model_crops
from fomm_kp.progress import Progress, batched, report
from fomm_kp.runtime.model import Model
from fomm_kp.video import (
    IMAGE_SUFFIXES,
    FrameRange,
    VideoWriter,
    crop_frame,
    iter_frames,
    probe,
    read_frame_at,
    read_image,
    resize_frame,
)
from fomm_kp.viz import draw_keypoints, image_row, keypoint_colors

__all__ = [
    "TransferOptions", "PanelOptions", "AnimationResult", "model_boxes", "source_view", "load_source",
    "cropped_frames", "output_size", "animate",
]

log = logging.getLogger(__name__)

Boxes = dict[int, np.ndarray]


@dataclass(frozen=True)
class TransferOptions:
    """How the driving motion moves the source.

    Attributes:
        relative: relative motion transfer (default) rather than absolute keypoints.
        adapt_scale: scale the relative motion by the keypoint hulls' size ratio.
        best_frame: measure the relative motion from the driving frame whose keypoints best match
            the source's (the frames before it animate the motion backwards, those after it
            forwards) instead of from the first frame. Costs one extra detector pass.
    """

    relative: bool = True
    adapt_scale: bool = True
    best_frame: bool = False

    def __post_init__(self) -> None:
        if self.best_frame and not self.relative:
            raise FommError("--best-frame applies to relative motion transfer only")


@dataclass(frozen=True)
class PanelOptions:
    """What the written frames show.

    Attributes:
        side_by_side: source | driving | result panels instead of the result alone.
        show_keypoints: keypoints drawn on the panels (source, driving and transferred).
        size: height of the result panel in pixels (default: the source's own height, so the
            result has the source's size). The result keeps the source's aspect ratio, the driving
            panel the driving video's; odd sides are rounded up to even (video encoders need it).
    """

    side_by_side: bool = False
    show_keypoints: bool = False
    size: int | None = None

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 8:
            raise FommError(f"the panel size must be at least 8 pixels, got {self.size}")


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


def model_boxes(model: Model, video: str | os.PathLike) -> Boxes | None:
    """Frame index → the crop box the model looks at (its fixed crop, or the localised subject's box,
    interpolated where it was not found), or None for whole frames."""
    located = model_crops(video, model.crop, model.config.data)
    return None if located is None else {int(i): b for i, b in zip(located.frame_indices, located.boxes)}


def source_view(model: Model, source: str | os.PathLike | np.ndarray, frame: int = 0, boxes: Boxes | None = None,
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
        if path.suffix.lower() in IMAGE_SUFFIXES:
            image = read_image(path)
            if model.crop.localized:
                log.warning("the model was trained on subject crops; the source image %s is used whole", path)
        else:
            info = probe(path)
            if not 0 <= frame < info.num_frames:
                raise FommError(f"source frame {frame} is out of range for {path} ({info.num_frames} frames)")
            image = read_frame_at(path, frame)
            boxes = boxes if boxes is not None else model_boxes(model, path)
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


def cropped_frames(model: Model, video: str | os.PathLike, frames: FrameRange | None = None,
                   boxes: Boxes | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Stream ``(index, crop (S, S, 3), view)`` for the frames of ``video``.

    ``crop`` is what the model sees (the whole frame, or its training crop box, resized to S × S);
    ``view`` is the same region at its native resolution and aspect ratio, for display. ``boxes``
    (frame index → box) skips finding the model's boxes again when the caller already has them.
    """
    frames = frames or FrameRange()
    size = model.config.model.image_size
    if boxes is None:
        boxes = model_boxes(model, video)
    for index, frame in iter_frames(video, start=frames.start, stop=frames.stop, stride=frames.stride):
        view = frame if boxes is None else crop_frame(frame, boxes[index])
        yield index, resize_frame(view, size), view


def _up_to_even(value: float) -> int:
    value = max(2, int(round(value)))
    return value + value % 2


def _panel_size(height: int, aspect: float) -> tuple[int, int]:
    """(width, height) of a panel of this height and width/height aspect, both rounded up to even."""
    height = _up_to_even(height)
    return _up_to_even(height * aspect), height


def output_size(view_shape: tuple[int, ...], size: int | None) -> tuple[int, int]:
    """(width, height) of the result panel for a source region of ``view_shape`` ``(H, W, ...)``: the
    region's own size, or ``size`` pixels high with its aspect ratio; odd sides rounded up to even."""
    height, width = view_shape[:2]
    if size is None:
        return _up_to_even(width), _up_to_even(height)
    return _panel_size(size, width / height)


def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="constant", constant_values=255)
    return frame


class _Panels:
    """Lays out each written frame: the result (with transferred keypoints), or source | driving | result."""

    def __init__(self, view: np.ndarray, animator: Animator, options: PanelOptions) -> None:
        self.options = options
        self.size = output_size(view.shape, options.size)
        # The source at the output size, for rendering the result there (full_resolution).
        self.source_full = frames_to_images(np.array(resize_frame(view, self.size)[None]), animator.device)
        self.source_model = animator.source_image
        self.colors = keypoint_colors(animator.kp_source.keypoints.shape[1])
        self.source_keypoints = points_in_panel(animator.kp_source.keypoints[0], *self.size)
        self.source_panel = self._draw(resize_frame(view, self.size), self.source_keypoints)
        self.driving_width: int | None = None

    def _draw(self, panel: np.ndarray, points: np.ndarray) -> np.ndarray:
        return draw_keypoints(panel, points, self.colors) if self.options.show_keypoints else panel

    def results(self, rendered: Rendered) -> np.ndarray:
        """The rendered batch at the output size, uint8 ``(B, H, W, 3)`` (one frame at a time: the
        full-resolution tensors of a large source are big)."""
        frames = []
        for i in range(rendered.prediction.shape[0]):
            visibility = None if rendered.visibility is None else rendered.visibility[i:i + 1]
            full = full_resolution(rendered.prediction[i:i + 1], rendered.flow[i:i + 1], visibility,
                                   self.source_model, self.source_full)
            frames.append(images_to_frames(full)[0])
        return np.stack(frames)

    def compose(self, result: np.ndarray, transferred: np.ndarray, view: np.ndarray, driving: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray]:
        """One written frame from a result at the output size and its driving view; also the transferred
        keypoints in pixels of the result panel. Keypoints are normalised tensors ``(K, 2)``."""
        width, height = self.size
        points = points_in_panel(transferred, width, height)
        frame = self._draw(resize_frame(result, self.size), points)
        if self.options.side_by_side:
            if self.driving_width is None:
                self.driving_width = _panel_size(height, view.shape[1] / view.shape[0])[0]
            panel = resize_frame(view, (self.driving_width, height))
            panel = self._draw(panel, points_in_panel(driving, self.driving_width, height))
            frame = image_row([self.source_panel, panel, frame])
        return _even(frame), points


def _best_reference(animator: Animator, model: Model, driving: Path, frames: FrameRange, boxes: Boxes | None,
                    batch_size: int) -> int:
    """Position (within ``frames``) of the driving frame whose keypoints best match the source's, set
    as the animator's reference."""
    keypoints, jacobians = [], []
    for batch in batched(cropped_frames(model, driving, frames, boxes), batch_size):
        detected = animator.detect(np.stack([crop for _, crop, _ in batch]))
        keypoints.append(detected.keypoints)
        jacobians.append(detected.jacobians)
    all_keypoints, all_jacobians = torch.cat(keypoints), torch.cat(jacobians)
    position = best_frame_index(animator.kp_source.keypoints[0].cpu().numpy(), all_keypoints.cpu().numpy())
    log.info("best-matching driving frame: %d", frames.start + position * frames.stride)
    animator.set_reference(reference_keypoints(all_keypoints[position], all_jacobians[position]))
    return position


def animate(
    source: str | os.PathLike | np.ndarray,
    driving: str | os.PathLike,
    model: Model | str | os.PathLike,
    out: str | os.PathLike,
    transfer: TransferOptions = TransferOptions(),
    panels: PanelOptions = PanelOptions(),
    source_frame: int = 0,
    frames: FrameRange | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> AnimationResult:
    """Animate ``source`` with the motion of the ``driving`` video and write ``out`` (.mp4 or .gif).

    ``source`` is an image file, a video (frame ``source_frame`` is used) or a uint8 ``(H, W, 3)``
    array; ``model`` a :class:`~fomm_kp.runtime.model.Model` or a checkpoint path. ``transfer`` says how
    the motion moves the source, ``panels`` what the frames show, ``frames`` which driving frames to
    use (streamed in batches of ``batch_size``); ``progress`` hears after each batch.
    """
    if not isinstance(model, Model):
        model = Model.load(model)
    if batch_size < 1:
        raise FommError(f"batch_size must be at least 1, got {batch_size}")
    driving, frames = Path(driving), frames or FrameRange()
    info = probe(driving)
    total = len(frames.indices(info.num_frames))
    if total == 0:
        raise FommError(f"no driving frames in {driving} (start={frames.start}, stop={frames.stop}, "
                        f"frames={info.num_frames})")
    boxes = model_boxes(model, driving)
    same_video = not isinstance(source, np.ndarray) and Path(source).resolve() == driving.resolve()
    view = source_view(model, source, source_frame, boxes if same_video else None)
    animator = Animator(model.network, resize_frame(view, model.config.model.image_size), relative=transfer.relative,
                        adapt_scale=transfer.adapt_scale)
    reference = _best_reference(animator, model, driving, frames, boxes, batch_size) if transfer.best_frame else 0
    layout = _Panels(view, animator, panels)
    writer = VideoWriter(out, info.fps / frames.stride)
    transferred, frame_size = [], (0, 0)
    try:
        for batch in batched(cropped_frames(model, driving, frames, boxes), batch_size):
            kp_driving = animator.detect(np.stack([crop for _, crop, _ in batch]))
            if transfer.relative and animator.kp_reference is None:  # the first driving frame is the reference
                animator.set_reference(index_keypoints(kp_driving, 0))
            rendered = animator.render(kp_driving)
            for i, result in enumerate(layout.results(rendered)):
                frame, points = layout.compose(result, rendered.keypoints.keypoints[i], batch[i][2],
                                               kp_driving.keypoints[i])
                transferred.append(points)
                frame_size = (frame.shape[1], frame.shape[0])
                writer.write(frame)
            report(progress, len(transferred), total, "animating")
    except BaseException:
        writer.close(success=False)
        raise
    writer.close()
    return AnimationResult(
        path=Path(out), num_frames=len(transferred), fps=writer.fps, reference_frame=frames.start + reference * frames.stride,
        movement_scale=animator.scale, frame_size=frame_size, keypoints=np.stack(transferred).astype(np.float32),
        source_keypoints=layout.source_keypoints.astype(np.float32),
    )
