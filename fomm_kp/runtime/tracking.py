"""Track keypoints through a video with a trained detector: :func:`track`.

The video is streamed in batches (constant memory whatever its length); each frame is cut where the
model looks (:func:`fomm_kp.localize.crop_rule.model_crops`), the detector runs on the batch, and the
keypoints go back to the pixels of the original frame. Frames where a localised subject was not
found get NaN keypoints and score 0. Where the keypoints sit is judged on the way, from frames spread
over the video (:class:`fomm_kp.localize.foreground.OnSubjectSampler`), and kept in the tracks'
``metadata["on_subject"]``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from fomm_kp.crops import CropSettings
from fomm_kp.errors import FommError
from fomm_kp.localize.crop_rule import model_crops
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
    """Detections of the frames tracked so far, one subject."""

    frame_indices: list[int] = field(default_factory=list)
    parts: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {"keypoints": [], "scores": [], "jacobians": [], "covariances": []})

    def add(self, indices: Sequence[int], found: np.ndarray, detections: Detections) -> np.ndarray:
        """Keep one batch; NaN (score 0) where the subject was not found. Returns its keypoints ``(B, K, 2)``."""
        self.frame_indices += list(indices)
        for name, missing in (("keypoints", np.nan), ("scores", 0.0), ("jacobians", np.nan), ("covariances", np.nan)):
            values = getattr(detections, name)
            mask = found.reshape((-1,) + (1,) * (values.ndim - 1))
            self.parts[name].append(np.where(mask, values, missing).astype(np.float32))
        return self.parts["keypoints"][-1]

    def tracks(self, info: VideoInfo, num_keypoints: int) -> Tracks:
        """The tracks, timed by the video's own timestamps when it has them (variable frame rates)."""
        arrays = {name: np.concatenate(values)[:, None] for name, values in self.parts.items()}
        frames = np.asarray(self.frame_indices, dtype=np.int64)
        times = None if info.times is None or len(info.times) <= frames[-1] else info.times[frames]
        return Tracks(frame_indices=frames, fps=info.fps, video=info.path, times=times,
                      keypoint_names=tuple(f"kp{i}" for i in range(num_keypoints)), subject_names=("subject0",),
                      **arrays)


def _detect(model: Detector, batch: list[tuple[int, np.ndarray]], box_of: dict[int, np.ndarray | None] | None,
            whole: np.ndarray, rows: _Rows) -> np.ndarray:
    """Detect in one batch of ``(frame index, frame)``; returns the batch's keypoints in frame pixels."""
    indices = [index for index, _ in batch]
    chosen = [whole if box_of is None else box_of.get(index) for index in indices]
    found = np.array([box is not None for box in chosen])
    boxes = np.stack([whole if box is None else box for box in chosen])
    crops = np.stack([resize_frame(crop_frame(frame, box), model.detector_size) for (_, frame), box in zip(batch, boxes)])
    return rows.add(indices, found, model.detect_resized(crops, boxes))


def track(
    video: str | os.PathLike,
    model: Detector | str | os.PathLike,
    out: str | os.PathLike | None = None,
    overlay: str | os.PathLike | None = None,
    crop: Sequence[float] | None = None,
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
    ``frames`` picks the frames (default: all); ``progress`` hears after each batch.
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
    settings = model.crop if crop is None else CropSettings(fixed_crop=tuple(crop))
    located = model_crops(video, settings, model.config.data, localize)
    columns = 4 if located is None else located.boxes.shape[1]
    whole = np.array([0, 0, info.width, info.height, 0.0][:columns], dtype=np.float64)
    box_of = None if located is None else located.box_of()
    overlay_video = None if overlay is None else TrailOverlay(overlay, info.fps / frames.stride, model.num_keypoints, trail)
    rows = _Rows()
    where = OnSubjectSampler(total, info.width, info.height, model.config.data.localize_config())
    try:
        stream = iter_frames(video, start=frames.start, stop=frames.stop, stride=frames.stride)
        for batch in batched(stream, batch_size):
            keypoints = _detect(model, batch, box_of, whole, rows)
            for (_, frame), points in zip(batch, keypoints):
                where.add(frame, points)
                if overlay_video is not None:
                    overlay_video.add(frame, points)
            report(progress, len(rows.frame_indices), total, "tracking")
    except BaseException:
        if overlay_video is not None:
            overlay_video.close(success=False)
        raise
    if overlay_video is not None:
        overlay_video.close()
    if not rows.frame_indices:
        raise FommError(f"no frames read from {video}")
    result = dataclasses.replace(rows.tracks(info, model.num_keypoints),
                                 metadata={"on_subject": where.result().to_data()})
    if out is not None:
        save_tracks(result, out)
    return result
