"""Track keypoints through a video with a trained detector: :func:`track`.

The video is decoded once on a background thread (:mod:`fomm_kp.decoding`) and streamed in
batches (constant memory whatever its length); each frame is cut where the model looks (its box
from :func:`fomm_kp.localize.crop_rule.model_crops` — for a localised model found in the same
decoding pass, :func:`~fomm_kp.localize.crop_rule.streamed_model_crops` — or, with
``localize="online"``, from the causal localiser that live streams use), the detector runs on the
batch (:func:`fomm_kp.runtime.pipeline.detect_at_boxes`), and the keypoints go back to the pixels
of the original frame. Frames where a localised subject was not found get NaN keypoints and score
0. Where the keypoints sit is judged on the way, from frames spread over the video
(:class:`fomm_kp.localize.foreground.OnSubjectSampler`), and kept in the tracks'
``metadata["on_subject"]``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from fomm_kp.crops import CropSettings
from fomm_kp.decoding import Prefetch, decoded_frames
from fomm_kp.errors import FommError
from fomm_kp.localize.crop_rule import model_crops, online_boxes, streamed_model_crops
from fomm_kp.localize.foreground import OnSubjectSampler
from fomm_kp.progress import Progress, batched, report
from fomm_kp.runtime.detector import Detections, Detector
from fomm_kp.runtime.loading import load_model
from fomm_kp.runtime.pipeline import detect_at_boxes
from fomm_kp.tracks import Tracks, save_tracks
from fomm_kp.video import FrameRange, VideoInfo, probe
from fomm_kp.viz import TrailOverlay

__all__ = ["track"]

LOCALIZE_CHOICES = ("on", "off", "auto", "online")


@dataclass
class _Rows:
    """Detections of the frames tracked so far, one subject."""

    frame_indices: list[int] = field(default_factory=list)
    parts: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {"keypoints": [], "scores": [], "jacobians": [], "covariances": []})

    def add(self, indices: Sequence[int], detections: Detections) -> np.ndarray:
        """Keep one batch (NaN, score 0 where the subject was not found). Returns its keypoints ``(B, K, 2)``."""
        self.frame_indices += list(indices)
        for name in self.parts:
            self.parts[name].append(np.asarray(getattr(detections, name), dtype=np.float32))
        return self.parts["keypoints"][-1]

    def tracks(self, info: VideoInfo, num_keypoints: int) -> Tracks:
        """The tracks, timed by the video's own timestamps when it has them (variable frame rates)."""
        arrays = {name: np.concatenate(values)[:, None] for name, values in self.parts.items()}
        frames = np.asarray(self.frame_indices, dtype=np.int64)
        times = None if info.times is None or len(info.times) <= frames[-1] else info.times[frames]
        return Tracks(frame_indices=frames, fps=info.fps, video=info.path, times=times,
                      keypoint_names=tuple(f"kp{i}" for i in range(num_keypoints)), subject_names=("subject0",),
                      **arrays)


def _boxed_frames(video: str | os.PathLike, model: Detector, settings: CropSettings, localize: str | None,
                  frames: FrameRange, info: VideoInfo, keep: Callable[[int], bool] | None,
                  ) -> Iterator[tuple[int, np.ndarray | None, np.ndarray | None]]:
    """``(frame index, frame, box or None)`` of the frames to track, decoded once on a thread. A
    localised model is localised in the same pass, unless every frame is needed (``keep`` None);
    then frames without a subject come as None unless ``keep(index)``."""
    streamed = None if keep is None or localize == "online" else streamed_model_crops(
        video, settings, model.config.data, localize, frames, keep)
    if streamed is not None:
        yield from streamed
        return
    if localize == "online":
        box_for = online_boxes(settings, model.config.data, info.width, info.height, info.fps)
    else:
        located = model_crops(video, settings, model.config.data, localize)
        whole = np.array([0.0, 0.0, info.width, info.height])
        box_of = None if located is None else located.box_of()
        box_for = (lambda index, frame: whole) if box_of is None else (lambda index, frame: box_of.get(index))
    with Prefetch(decoded_frames(video, frames), size=32, name="decode") as stream:
        for index, frame in stream:
            yield index, frame, box_for(index, frame)


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
    (``localize`` = ``on``/``off``/``auto`` overrides it; ``online`` follows the subject as a live
    stream does, without looking ahead: see :mod:`fomm_kp.localize.online`); a fixed ``crop`` box
    overrides all of them.
    ``frames`` picks the frames (default: all); ``progress`` hears after each batch.
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if localize not in (None, *LOCALIZE_CHOICES):
        raise FommError(f"localize must be on, off, auto or online, got '{localize}'")
    info = probe(video)
    frames = frames or FrameRange()
    total = len(frames.indices(info.num_frames))
    if total == 0:
        raise FommError(f"no frames to track in {video} (start={frames.start}, stop={frames.stop}, "
                        f"frames={info.num_frames})")
    settings = model.crop if crop is None else CropSettings(fixed_crop=tuple(crop))
    overlay_video = None if overlay is None else TrailOverlay(overlay, info.fps / frames.stride, model.num_keypoints, trail)
    rows = _Rows()
    where = OnSubjectSampler(total, info.width, info.height, model.config.data.localize_config())
    try:
        sampled = set(frames.indices(info.num_frames)[::where.every])  # the frames the sampler keeps
        keep = None if overlay is not None else sampled.__contains__  # an overlay needs every frame
        for batch in batched(_boxed_frames(video, model, settings, localize, frames, info, keep), batch_size):
            indices, images, boxes = zip(*batch)
            keypoints = rows.add(indices, detect_at_boxes(model, images, boxes))
            for frame, points in zip(images, keypoints):
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
