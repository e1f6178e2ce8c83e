"""Track keypoints through a video with a trained detector: :func:`track`.

The video is streamed in batches (constant memory whatever its length); each frame is cut where the
model looks (:func:`fomm_kp.localize.crop_rule.model_crops`), the detector runs on the batch, and
the keypoints go back to the pixels of the original frame. A model that follows one localised
subject is localised in the same decoding pass
(:func:`~fomm_kp.localize.crop_rule.streamed_model_crops`, the same boxes), decoded on a background
thread (:mod:`fomm_kp.decoding`; a grey video's frames as one grey plane, :mod:`fomm_kp.grey`); with ``localize="online"`` the subject is followed by the causal
localiser that live streams use, and the detector runs as live runs it
(:func:`fomm_kp.runtime.pipeline.detect_at_boxes`). Frames where a localised subject was not found
get NaN keypoints and score 0. A model trained on several subjects cuts one crop per subject
(:func:`fomm_kp.localize.crop_rule.model_subjects_crops`) and the tracks hold them all, with their
identity confidences. Where the keypoints sit is judged on the way, from frames spread over the
video (:class:`fomm_kp.localize.foreground.OnSubjectSampler`), and kept in the tracks'
``metadata["on_subject"]``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np

from fomm_kp.crops import CropSettings
from fomm_kp.decoding import Prefetch, decoded_frames
from fomm_kp.errors import FommError
from fomm_kp.grey import as_rgb
from fomm_kp.localize.crop_rule import (SubjectCrops, SubjectsCrops, model_subjects_crops, online_boxes,
                                        streamed_model_crops)
from fomm_kp.localize.foreground import OnSubjectSampler
from fomm_kp.progress import Progress, batched, report
from fomm_kp.runtime.detector import Detections, Detector
from fomm_kp.runtime.loading import load_model
from fomm_kp.runtime.pipeline import detect_at_boxes
from fomm_kp.tracks import Tracks, save_tracks
from fomm_kp.video import FrameRange, VideoInfo, crop_frame, iter_frames, probe, resize_frame
from fomm_kp.viz import TrailOverlay

__all__ = ["track"]

LOCALIZE_CHOICES = ("on", "off", "auto", "online")


@dataclass
class _Rows:
    """Detections of the frames tracked so far, N subjects."""

    frame_indices: list[int] = field(default_factory=list)
    parts: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {"keypoints": [], "scores": [], "jacobians": [], "covariances": []})
    identities: list[np.ndarray] = field(default_factory=list)

    def add(self, indices: Sequence[int], found: np.ndarray, detections: Detections, identity: np.ndarray) -> np.ndarray:
        """Keep one batch of B frames × N subjects (``found`` ``(B, N)``, detections of the B·N crops in
        that order); NaN (score 0) where a subject was not found. Returns its keypoints ``(B, N, K, 2)``."""
        self.frame_indices += list(indices)
        b, n = found.shape
        for name, missing in (("keypoints", np.nan), ("scores", 0.0), ("jacobians", np.nan), ("covariances", np.nan)):
            values = getattr(detections, name)
            values = values.reshape((b, n) + values.shape[1:])
            mask = found.reshape((b, n) + (1,) * (values.ndim - 2))
            self.parts[name].append(np.where(mask, values, missing).astype(np.float32))
        self.identities.append(np.where(found, identity, 0.0).astype(np.float32))
        return self.parts["keypoints"][-1]

    def tracks(self, info: VideoInfo, num_keypoints: int, several: bool) -> Tracks:
        """The tracks, timed by the video's own timestamps when it has them (variable frame rates)."""
        arrays = {name: np.concatenate(values) for name, values in self.parts.items()}
        count = arrays["keypoints"].shape[1]
        frames = np.asarray(self.frame_indices, dtype=np.int64)
        times = None if info.times is None or len(info.times) <= frames[-1] else info.times[frames]
        return Tracks(frame_indices=frames, fps=info.fps, video=info.path, times=times,
                      keypoint_names=tuple(f"kp{i}" for i in range(num_keypoints)),
                      subject_names=tuple(f"subject{i}" for i in range(count)),
                      identities=np.concatenate(self.identities) if several else None, **arrays)


class _Where(NamedTuple):
    """Per frame index: the boxes ``(N, 4 or 5)`` of its N subjects, whether each was found ``(N,)``
    and the identity confidences ``(N,)``."""

    boxes: dict[int, np.ndarray]
    found: dict[int, np.ndarray]
    identity: dict[int, np.ndarray]
    count: int


def _where(located: SubjectCrops | SubjectsCrops | None) -> _Where | None:
    if located is None:
        return None
    if isinstance(located, SubjectCrops):
        located = SubjectsCrops(located.frame_indices, located.boxes[:, None], located.found[:, None],
                                located.found[:, None].astype(np.float32))
    rows = located.rows()
    return _Where({i: located.boxes[r] for i, r in rows.items()}, {i: located.found[r] for i, r in rows.items()},
                  {i: located.identity[r] for i, r in rows.items()}, located.count)


def _detect(model: Detector, batch: list[tuple[int, np.ndarray]], where: _Where | None, whole: np.ndarray,
            rows: _Rows) -> np.ndarray:
    """Detect in one batch of ``(frame index, frame)``; returns the batch's keypoints ``(B, N, K, 2)`` in frame pixels."""
    indices = [index for index, _ in batch]
    count = 1 if where is None else where.count
    none = np.zeros(count, dtype=bool)
    found = np.stack([np.ones(1, bool) if where is None else where.found.get(index, none) for index in indices])
    boxes = np.stack([whole[None] if where is None else where.boxes.get(index, np.tile(whole, (count, 1)))
                      for index in indices])
    identity = np.stack([found[i].astype(np.float32) if where is None else where.identity.get(index, none)
                         for i, index in enumerate(indices)])
    boxes = np.where(found[..., None], boxes, whole)  # a subject not found: any box, its keypoints are dropped
    crops = np.stack([resize_frame(crop_frame(frame, box), model.detector_size)
                      for (_, frame), frame_boxes in zip(batch, boxes) for box in frame_boxes])
    return rows.add(indices, found, model.detect_resized(crops, boxes.reshape(-1, boxes.shape[-1])), identity)


def _settings(model: Detector, crop: Sequence[float] | CropSettings | None) -> CropSettings:
    """Where the model looks: its own settings, the ones given, or a fixed crop box."""
    if crop is None or isinstance(crop, CropSettings):
        return model.crop if crop is None else crop
    return CropSettings(fixed_crop=tuple(crop))


def _show(batch: list[tuple[int, np.ndarray]], keypoints: np.ndarray, where: OnSubjectSampler,
          overlay: TrailOverlay | None, placed: _Where | None) -> None:
    """Hand a batch's frames and keypoints ``(B, N, K, 2)`` to the on-subject judge and the overlay
    (with identity confidences when ``placed`` holds several subjects)."""
    for (index, frame), points in zip(batch, keypoints):
        where.add(frame, points.reshape(-1, 2))  # every subject's keypoints
        if overlay is not None and placed is None:
            overlay.add(as_rgb(frame), points[0])
        elif overlay is not None:
            overlay.add(as_rgb(frame), points, placed.identity.get(index))


def _boxed_frames(video: str | os.PathLike, model: Detector, settings: CropSettings, localize: str | None,
                  frames: FrameRange, info: VideoInfo, keep: Callable[[int], bool] | None,
                  ) -> Iterator[tuple[int, np.ndarray | None, np.ndarray | None]] | None:
    """``(frame index, frame, box or None)`` of the frames to track in one decoding pass, for one
    subject followed online, or localised as a whole video would be (then frames without a subject
    come as None unless ``keep(index)``; not when every frame is needed, ``keep`` None). None: use
    the boxes of :func:`~fomm_kp.localize.crop_rule.model_subjects_crops` instead."""
    if settings.subjects != 1:
        if localize == "online":
            raise FommError(f"localize 'online' follows one subject; this model follows {settings.subjects or 'several'}")
        return None
    if localize != "online":
        return None if keep is None else streamed_model_crops(video, settings, model.config.data, localize, frames, keep)
    box_for = online_boxes(settings, model.config.data, info.width, info.height, info.fps)

    def boxed() -> Iterator[tuple[int, np.ndarray | None, np.ndarray | None]]:
        with Prefetch(decoded_frames(video, frames), size=32, name="decode") as stream:
            for index, frame in stream:
                yield index, frame, box_for(index, frame)

    return boxed()


def _track_boxed(boxed: Iterator, model: Detector, rows: _Rows, where: OnSubjectSampler, overlay: TrailOverlay | None,
                 batch_size: int, progress: Progress | None, total: int) -> None:
    """Detect one subject in frames that come with their boxes (:func:`_boxed_frames`)."""
    for batch in batched(boxed, batch_size):
        indices, images, boxes = zip(*batch)
        found = np.array([[box is not None] for box in boxes])
        keypoints = rows.add(indices, found, detect_at_boxes(model, images, boxes), found.astype(np.float32))
        _show(list(zip(indices, images)), keypoints, where, overlay, None)
        report(progress, len(rows.frame_indices), total, "tracking")


def _track_located(batches: Iterator, model: Detector, placed: _Where | None, several: bool, whole: np.ndarray,
                   rows: _Rows, where: OnSubjectSampler, overlay: TrailOverlay | None, progress: Progress | None,
                   total: int) -> None:
    """Detect every subject in batches of ``(frame index, frame)`` at the boxes of ``placed``."""
    for batch in batches:
        _show(batch, _detect(model, batch, placed, whole, rows), where, overlay, placed if several else None)
        report(progress, len(rows.frame_indices), total, "tracking")


def track(
    video: str | os.PathLike,
    model: Detector | str | os.PathLike,
    out: str | os.PathLike | None = None,
    overlay: str | os.PathLike | None = None,
    crop: Sequence[float] | CropSettings | None = None,
    localize: str | None = None,
    frames: FrameRange | None = None,
    batch_size: int = 64,
    trail: int = 12,
    progress: Progress | None = None,
) -> Tracks:
    """Track keypoints through ``video``; returns :class:`~fomm_kp.tracks.Tracks` in original-frame pixels.

    ``model`` is any :class:`~fomm_kp.runtime.detector.Detector` (or a checkpoint / ``.onnx`` path). ``out`` saves
    the tracks (``.npz``/``.csv``/``.slp``/``.nwb``); ``overlay`` writes a video with keypoints and short trails
    (``trail`` frames). Localisation follows the model's training (``localize`` = ``on``/``off``/``auto``
    overrides it; ``online`` follows one subject as a live stream does, without looking ahead: see
    :mod:`fomm_kp.localize.online`); a fixed ``crop`` box overrides all of them. ``frames`` picks the frames
    (default: all); ``progress`` hears after each batch. A model trained on several subjects follows each
    (``Tracks`` ``(T, N, K, 2)`` with identity confidences); ``crop`` may be :class:`~fomm_kp.crops.CropSettings`
    in place of the model's own (e.g. other ``subjects``).
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if localize not in (None, *LOCALIZE_CHOICES):
        raise FommError(f"localize must be on, off, auto or online, got '{localize}'")
    info, frames = probe(video), frames or FrameRange()
    total = len(frames.indices(info.num_frames))
    if total == 0:
        raise FommError(f"no frames to track in {video} (start={frames.start}, stop={frames.stop}, "
                        f"frames={info.num_frames})")
    settings, rows = _settings(model, crop), _Rows()
    where = OnSubjectSampler(total, info.width, info.height, model.config.data.localize_config())
    keep = None if overlay is not None else set(frames.indices(info.num_frames)[::where.every]).__contains__
    boxed = _boxed_frames(video, model, settings, localize, frames, info, keep)
    located = None if boxed is not None else model_subjects_crops(video, settings, model.config.data, localize)
    whole = np.array([0, 0, info.width, info.height, 0.0][:4 if located is None else located.boxes.shape[-1]])
    placed, several = _where(located), isinstance(located, SubjectsCrops)
    overlay_video = None if overlay is None else TrailOverlay(overlay, info.fps / frames.stride, model.num_keypoints,
                                                              trail, several and placed.count or 1)
    try:
        if boxed is not None:
            _track_boxed(boxed, model, rows, where, overlay_video, batch_size, progress, total)
        else:
            batches = batched(iter_frames(video, start=frames.start, stop=frames.stop, stride=frames.stride), batch_size)
            _track_located(batches, model, placed, several, whole, rows, where, overlay_video, progress, total)
    except BaseException:
        if overlay_video is not None:
            overlay_video.close(success=False)
        raise
    if overlay_video is not None:
        overlay_video.close()
    if not rows.frame_indices:
        raise FommError(f"no frames read from {video}")
    result = dataclasses.replace(rows.tracks(info, model.num_keypoints, several),
                                 metadata={"on_subject": where.result().to_data()})
    if out is not None:
        save_tracks(result, out)
    return result
