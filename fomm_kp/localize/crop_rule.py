"""The crop rule: which box of each frame a model learns from and looks at.

Training (:func:`training_crops`) decides from the config: a fixed ``crop`` box, or, with
``data.localize`` ``on`` (always) or ``auto`` (when the subject is small in the frame), square boxes
that follow the subject; with ``data.align`` the boxes turn each crop to the subject's heading.
A trained model then looks again as its :class:`~fomm_kp.crops.CropSettings` say (:func:`model_crops`
for a video, :func:`image_crops` for independent labelled images): tracking, distillation,
animation and evaluation all crop through these two functions.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from fomm_kp.config import DataConfig, LocalizeConfig
from fomm_kp.crops import CropSettings, Scene, check_box, check_box_in_frame
from fomm_kp.errors import FommError
from fomm_kp.localize.background import Background, estimate_background
from fomm_kp.localize.boxes import boxes_for_frames, boxes_for_video
from fomm_kp.localize.decisions import decide, should_align
from fomm_kp.localize.motion import motion_region
from fomm_kp.localize.multi import subjects_for_video
from fomm_kp.localize.online import OnlineConfig, OnlineLocalizer
from fomm_kp.localize.streaming import stream_boxes
from fomm_kp.video import FrameRange, probe

__all__ = ["SubjectCrops", "SubjectsCrops", "FrameBoxes", "TrainingCrops", "subject_crops", "training_crops",
           "stored_background", "model_crops", "model_subjects_crops", "streamed_model_crops", "image_crops",
           "online_boxes"]

log = logging.getLogger(__name__)


FrameBoxes = Callable[[int, np.ndarray], "np.ndarray | None"]  # (frame number, frame) -> box, None: no subject


class SubjectCrops(NamedTuple):
    """Crop boxes of the frames of a video: ``frame_indices`` ``(T,)``, ``boxes`` float64 ``(T, 4)``
    (``(T, 5)`` when turned to the heading) and ``found`` bool ``(T,)`` (the subject was seen there;
    elsewhere the box is interpolated)."""

    frame_indices: np.ndarray
    boxes: np.ndarray
    found: np.ndarray

    def box_of(self) -> dict[int, np.ndarray | None]:
        """Frame index → box, None where the subject was not found."""
        return {int(i): (b if f else None) for i, b, f in zip(self.frame_indices, self.boxes, self.found)}

    def where_found(self) -> "SubjectCrops":
        return SubjectCrops(*(a[self.found] for a in self))


class SubjectsCrops(NamedTuple):
    """Crop boxes of several subjects in the frames of a video, identities kept: ``frame_indices``
    ``(T,)``, ``boxes`` float64 ``(T, N, 4)`` (``(T, N, 5)`` when turned to each subject's heading),
    ``found`` bool ``(T, N)`` (the subject was seen there, or within a bridged gap; elsewhere its box is
    interpolated and it gets no keypoints) and ``identity`` float ``(T, N)``, the identity confidence."""

    frame_indices: np.ndarray
    boxes: np.ndarray
    found: np.ndarray
    identity: np.ndarray

    @property
    def count(self) -> int:
        return int(self.boxes.shape[1])

    def subject(self, n: int) -> SubjectCrops:
        """The crops of subject ``n`` alone."""
        return SubjectCrops(self.frame_indices, self.boxes[:, n], self.found[:, n])

    def rows(self) -> dict[int, int]:
        """Frame index → row."""
        return {int(i): r for r, i in enumerate(self.frame_indices)}


def _subjects(video: str | os.PathLike, data: DataConfig, subjects: int | str, side: int | None,
              align: bool | None, background: Background | None) -> SubjectsCrops:
    """Crops of several subjects (:mod:`fomm_kp.localize.multi`)."""
    if data.localize == "off":
        raise FommError("several subjects need localisation (each is found and cropped on its own): "
                        "set data.localize to on or auto")
    settings = data.localize_config()
    located = subjects_for_video(video, settings, data.identity, subjects, background, side)
    if align is None:
        align = should_align(located, data.align, settings)
        log.info("crops turned to each subject's heading: %s (align %s, elongation %.2f)",
                 "yes" if align else "no", data.align, located.elongation)
    return SubjectsCrops(located.frame_indices, located.crop_boxes(align).astype(np.float64), located.present,
                         located.identity)


def subject_crops(
    video: str | os.PathLike, data: DataConfig, crop: Sequence[float] | None = None, side: int | None = None,
    align: bool | None = None, background: Background | None = None, subjects: int | str | None = None,
) -> SubjectCrops | SubjectsCrops | None:
    """Per-frame crop boxes of ``video``, or None for whole frames.

    A fixed ``crop`` box applies to every frame. Otherwise ``data.localize`` decides: ``on`` always
    follows the subject, ``auto`` only when it is small in the frame, ``off`` never. ``side`` fixes
    the box side (a trained model's). Boxes have a fifth column, the angle that turns each crop to
    the subject's heading, when ``align`` (None: as ``data.align`` decides). ``background``: the
    empty scene (default: the median of frames sampled over ``video``). ``subjects`` (default
    ``data.subjects``) other than 1 follows that many subjects (or ``auto``: as many as persist) and
    returns :class:`SubjectsCrops`.
    """
    subjects = data.subjects if subjects is None else subjects
    if crop is None and subjects != 1:
        return _subjects(video, data, subjects, side, align, background)
    info = probe(video)
    if crop is not None:
        box = np.asarray(check_box_in_frame(crop, info.width, info.height, video), dtype=np.float64)
        return SubjectCrops(np.arange(info.num_frames), np.tile(box, (info.num_frames, 1)), np.ones(info.num_frames, bool))
    if data.localize == "off":
        return None
    settings = data.localize_config()
    background = background or estimate_background(video, settings)
    if data.localize == "auto" and not decide(video, settings, background).use:
        return None
    located = boxes_for_video(video, settings, background=background, side=side)
    if align is None:
        align = should_align(located, data.align, settings)
        log.info("crops turned to the subject's heading: %s (align %s, elongation %.2f)",
                 "yes" if align else "no", data.align, located.elongation)
    return SubjectCrops(located.frame_indices, located.crop_boxes(align).astype(np.float64), located.found)


class TrainingCrops(NamedTuple):
    """What training looks at: the crops (frames where the subject was found; None: whole frames;
    with several subjects every subject's boxes, ``found`` saying where), the settings a model
    trained on them keeps (the median box side is filled in by the caller), the clip's empty scene,
    and whether one distinct subject stands out in it (:attr:`LocalizeDecision.distinct`: its
    foreground is the subject)."""

    crops: SubjectCrops | SubjectsCrops | None
    settings: CropSettings
    background: Background
    distinct: bool


def training_crops(video: str | os.PathLike, data: DataConfig, crop: Sequence[float] | None = None) -> TrainingCrops:
    """The crops to train on, and where a model trained on them will look (:class:`TrainingCrops`).
    A localised model keeps the clip's empty scene, for clips too short to have their own. The
    localisation decision is taken once here, for ``localize: auto`` and for ``distinct``."""
    background = estimate_background(video, data.localize_config())
    decision = decide(video, data.localize_config(), background)
    if data.localize == "auto" and crop is None and data.subjects == 1:  # decided: subject_crops need not again
        data = dataclasses.replace(data, localize="on" if decision.use else "off")
    located = subject_crops(video, data, crop, background=background)
    if located is None and crop is None and data.motion_crop == "auto":
        region = motion_region(background, data.localize_config())
        if region is not None:
            crop = tuple(float(v) for v in region)
            log.info("no single subject localised: cropping every frame to where the frame changes, box %s px",
                     ", ".join(f"{v:.0f}" for v in crop))
            located = subject_crops(video, data, crop)
    localized = located is not None and crop is None
    scene = None
    if localized:
        image = np.clip(np.round(background.image), 0, 255).astype(np.uint8)
        scene = Scene(image, background.factor, background.frame_width, background.frame_height)
    if isinstance(located, SubjectsCrops) and located.count == 1:  # subjects: auto found one
        located = located.subject(0)
    several = isinstance(located, SubjectsCrops)
    settings = CropSettings(localized=localized, fixed_crop=None if crop is None else check_box(crop),
                            aligned=located is not None and located.boxes.shape[-1] == 5, scene=scene,
                            subjects=located.count if several else 1)
    if located is not None and not several:
        located = located.where_found()
    return TrainingCrops(located, settings, background, decision.distinct)


def stored_background(video: str | os.PathLike, crop: CropSettings, config: LocalizeConfig) -> Background | None:
    """The training video's empty scene (:attr:`CropSettings.scene`) as the background of ``video``,
    when ``video`` is too short for a background of its own (fewer frames than
    ``config.background_samples``: a median of a few frames still holds the subject) and has the
    same frame size; else None (the video's own frames are used)."""
    scene = crop.scene
    if scene is None:
        return None
    info = probe(video)
    if info.num_frames >= config.background_samples:
        return None
    if (info.width, info.height) != (scene.frame_width, scene.frame_height):
        log.warning("%s has %d frames, too few for a background of its own, and its frames (%dx%d) differ from "
                    "the training video's (%dx%d): the subject may not be found", video, info.num_frames,
                    info.width, info.height, scene.frame_width, scene.frame_height)
        return None
    log.info("%s has %d frames: localising against the training video's empty scene", video, info.num_frames)
    return Background(scene.image.astype(np.float32), scene.factor, scene.frame_width, scene.frame_height)


def model_crops(video: str | os.PathLike, crop: CropSettings, data: DataConfig, localize: str | None = None,
                ) -> SubjectCrops | None:
    """The boxes a trained model looks at in the frames of ``video``: its fixed crop, or boxes that
    follow the subject with its box side and heading rule, or None (whole frames). ``localize``
    (``on``/``off``/``auto``) overrides the model's own choice."""
    located = model_subjects_crops(video, crop, data, localize)
    if isinstance(located, SubjectsCrops):
        log.info("the model follows %d subjects: using the crops of the first", located.count)
        return located.subject(0)
    return located


def model_subjects_crops(video: str | os.PathLike, crop: CropSettings, data: DataConfig, localize: str | None = None,
                         ) -> SubjectCrops | SubjectsCrops | None:
    """:func:`model_crops` for tracking: a model trained on several subjects (``crop.subjects`` not 1;
    0: count them in this video) follows each of them here too (:class:`SubjectsCrops`)."""
    localize = localize or ("on" if crop.localized else "off")
    side = int(round(crop.box_side)) if crop.localized and localize != "auto" and crop.box_side > 0 else None
    aligned = crop.aligned and crop.fixed_crop is None
    background = stored_background(video, crop, data.localize_config()) if localize != "off" else None
    subjects = crop.subjects if crop.subjects > 0 else "auto"
    return subject_crops(video, dataclasses.replace(data, localize=localize), crop.fixed_crop, side, aligned, background,
                         subjects)


def streamed_model_crops(video: str | os.PathLike, crop: CropSettings, data: DataConfig, localize: str | None,
                         frames: FrameRange = FrameRange(), keep: Callable[[int], bool] | None = None,
                         ) -> Iterator[tuple[int, np.ndarray | None, np.ndarray | None]] | None:
    """:func:`model_crops` in one decoding pass, with the frames: ``(index, frame, box)`` of the frames
    of ``frames``, the same boxes (:func:`fomm_kp.localize.streaming.stream_boxes`); box None where
    the subject was not found, and frame None there too unless ``keep(index)``. For a model that
    follows one localised subject with its own box side; None for other models (use :func:`model_subjects_crops`)."""
    localize = localize or ("on" if crop.localized else "off")
    side = int(round(crop.box_side))
    if localize != "on" or not crop.localized or crop.fixed_crop is not None or side < 1 or crop.subjects != 1:
        return None
    settings = data.localize_config()
    background = stored_background(video, crop, settings) or estimate_background(video, settings)
    return stream_boxes(video, background, settings, side, crop.aligned, frames, keep)


def image_crops(frames: Iterable[np.ndarray] | np.ndarray, crop: CropSettings, data: DataConfig,
                background: Background) -> tuple[np.ndarray, np.ndarray] | None:
    """The boxes ``(M, 4 or 5)`` and found flags ``(M,)`` a trained model looks at in independent
    images (labelled frames), each localised on its own against ``background``; None for whole frames."""
    frames = np.asarray(frames)
    if crop.fixed_crop is not None:
        return np.tile(np.asarray(crop.fixed_crop, dtype=np.float64), (len(frames), 1)), np.ones(len(frames), bool)
    if not crop.localized:
        return None
    located = boxes_for_frames(frames, background, data.localize_config(), side=int(round(crop.box_side)))
    return located.crop_boxes(crop.aligned).astype(np.float64), located.found


def online_boxes(crop: CropSettings, data: DataConfig, width: int, height: int, fps: float,
                 online: OnlineConfig = OnlineConfig(), background: Background | None = None) -> FrameBoxes:
    """The boxes a trained model looks at in frames handed over one at a time (a live stream): its
    fixed crop, whole frames, or boxes that follow the subject causally
    (:class:`~fomm_kp.localize.online.OnlineLocalizer`, with the model's box side and heading rule,
    against a running background that the model's stored empty scene stands in for until it is warm;
    ``background``: a fixed background instead). One subject: a model trained on several follows one here."""
    if crop.fixed_crop is not None:
        fixed = np.asarray(crop.fixed_crop, dtype=np.float64)
        return lambda index, frame: fixed
    if not crop.localized:
        whole = np.array([0.0, 0.0, width, height])
        return lambda index, frame: whole
    side = int(round(crop.box_side)) or min(width, height)
    scene = crop.scene
    initial = None if scene is None else Background(scene.image.astype(np.float32), scene.factor, scene.frame_width,
                                                    scene.frame_height)
    return OnlineLocalizer(width, height, side, crop.aligned, fps, data.localize_config(), online, background,
                           initial).update
