"""Track keypoints through a video with a trained detector: :func:`track`.

The video is streamed in batches (constant memory whatever its length); each frame is cut where the
model looks (:func:`fomm_kp.localize.crop_rule.model_crops`), the detector runs on the batch, and the
keypoints go back to the pixels of the original frame. Frames where a localised subject was not
found get NaN keypoints and score 0. A model trained on several subjects cuts one crop per subject
(:func:`fomm_kp.localize.crop_rule.model_subjects_crops`) and the tracks hold them all, with their
identity confidences. Where the keypoints sit is judged on the way, from frames spread over the
video (:class:`fomm_kp.localize.foreground.OnSubjectSampler`), and kept in the tracks'
``metadata["on_subject"]``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np

from fomm_kp.crops import CropSettings
from fomm_kp.errors import FommError
from fomm_kp.localize.crop_rule import SubjectCrops, SubjectsCrops, model_subjects_crops
from fomm_kp.localize.foreground import OnSubjectSampler
from fomm_kp.progress import Progress, batched, report
from fomm_kp.runtime.detector import Detections, Detector
from fomm_kp.runtime.loading import load_model
from fomm_kp.tracks import Tracks, save_tracks
from fomm_kp.video import FrameRange, VideoInfo, crop_frame, iter_frames, probe, resize_frame
from fomm_kp.viz import TrailOverlay

__all__ = ["track"]

LOCALIZE_CHOICES = ("on", "off", "auto")


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
            overlay.add(frame, points[0])
        elif overlay is not None:
            overlay.add(frame, points, placed.identity.get(index))


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

    ``model`` is any :class:`~fomm_kp.runtime.detector.Detector` (or a checkpoint / ``.onnx`` path).
    ``out`` saves the tracks (``.npz``/``.csv``/``.slp``/``.nwb``); ``overlay`` writes a video with
    keypoints and short trails (``trail`` frames). Localisation follows the model's training
    (``localize`` = ``on``/``off``/``auto`` overrides it); a fixed ``crop`` box overrides both.
    ``frames`` picks the frames (default: all); ``progress`` hears after each batch. A model trained on
    several subjects follows each (``Tracks`` ``(T, N, K, 2)`` with identity confidences); ``crop`` may
    be :class:`~fomm_kp.crops.CropSettings` in place of the model's own (e.g. other ``subjects``).
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if localize not in (None, *LOCALIZE_CHOICES):
        raise FommError(f"localize must be on, off or auto, got '{localize}'")
    info = probe(video)
    frames = frames or FrameRange()
    total = len(frames.indices(info.num_frames))
    if total == 0:
        raise FommError(f"no frames to track in {video} (start={frames.start}, stop={frames.stop}, "
                        f"frames={info.num_frames})")
    located = model_subjects_crops(video, _settings(model, crop), model.config.data, localize)
    whole = np.array([0, 0, info.width, info.height, 0.0][:4 if located is None else located.boxes.shape[-1]])
    placed, several = _where(located), isinstance(located, SubjectsCrops)
    overlay_video = None if overlay is None else TrailOverlay(overlay, info.fps / frames.stride, model.num_keypoints,
                                                              trail, several and placed.count or 1)
    rows = _Rows()
    where = OnSubjectSampler(total, info.width, info.height, model.config.data.localize_config())
    try:
        for batch in batched(iter_frames(video, start=frames.start, stop=frames.stop, stride=frames.stride), batch_size):
            _show(batch, _detect(model, batch, placed, whole, rows), where, overlay_video, placed if several else None)
            report(progress, len(rows.frame_indices), total, "tracking")
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
