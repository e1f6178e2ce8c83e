"""Video reconstruction quality, measured as in the FOMM papers.

Protocol (Siarohin et al. 2019, and MRAA/TPSMM after it): for each held-out video, the source is
its first frame and the driving frames are all its frames (including the first); the model
reconstructs every driving frame from the source and both frames' keypoints. Reported:

* **L1**: mean absolute difference between reconstruction and driving frame, pixel values in
  [0, 1], averaged over pixels, then over all frames of all videos. Measured at the model's image
  size S (what the model reconstructs), on the region the model sees (its training crop, if any).
* **AKD** (faces): Average Keypoint Distance between 68 supervised face landmarks found in the
  driving frame and in the reconstruction (:mod:`fomm_kp.evaluation.landmarks`: face-alignment as in the
  papers, or dlib), in pixels of frames resized to ``landmark_size`` (256, the papers' frame
  size): both images are the S-pixel ones upsampled, so resolution loss counts for neither.
  Per frame, the mean Euclidean distance over landmarks found in both; then the mean over frames.
* **MKR**: missing-keypoint rate, the share of landmarks found in the driving frame but not in the
  reconstruction (a face the landmark detector no longer finds counts as 68 missing points).
* **AED** (faces): mean Euclidean distance between identity embeddings of the driving frame and of
  the reconstruction (:mod:`fomm_kp.evaluation.identity`: dlib's face-recognition ResNet, not the
  papers' OpenFace), on the same 256-px images; 0 when identities agree exactly.

``resolution="full"`` measures instead at the video's own resolution (the region the model sees,
at its native size): the reconstruction is brought there as ``animate`` renders its frames
(:func:`fomm_kp.animation.upsample.full_resolution`), and L1 compares it with the native driving frame.

Beside the model, the same numbers for copying the source frame unchanged (``baseline_*``): a
model that does not capture the motion scores close to it. The learned background/camera motion is
used here, as in training (it is switched off only when animating another video).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch

from fomm_kp.animation.render import cropped_frames
from fomm_kp.animation.upsample import full_resolution
from fomm_kp.errors import FommError
from fomm_kp.evaluation.face_scores import FrameScores, keypoint_distance
from fomm_kp.evaluation.identity import DlibFaceEmbedding, FaceEmbedding
from fomm_kp.evaluation.landmarks import LandmarkDetector, landmark_detector
from fomm_kp.images import frames_to_images, images_to_frames
from fomm_kp.progress import Progress, batched, report
from fomm_kp.runtime.model import Model
from fomm_kp.video import FrameRange, probe, resize_frame

__all__ = [
    "VideoReconstruction",
    "ReconstructionReport",
    "keypoint_distance",
    "evaluate_reconstruction",
    "PAPER_VOXCELEB_256",
    "RESOLUTIONS",
]

log = logging.getLogger(__name__)

# The FOMM paper's VoxCeleb numbers at 256 px (Table 3, full model): a reference point only.
PAPER_VOXCELEB_256 = {"l1": 0.043, "akd": 1.294}
# Where L1 is measured: at the model's image size, or at the video's own ("full") resolution.
RESOLUTIONS = ("model", "full")


def _mean(values: np.ndarray | None) -> float | None:
    """Mean over the finite entries (frames where the metric is defined); None when there are none."""
    if values is None or not np.isfinite(values).any():
        return None
    return float(np.nanmean(values))


@dataclass(frozen=True)
class VideoReconstruction:
    """Reconstruction of one video. Per-frame arrays are ``(T,)``; AKD/AED entries NaN where undefined
    (no face found), the arrays None when the metric was not measured."""

    video: str
    frame_indices: np.ndarray
    l1_per_frame: np.ndarray
    baseline_l1_per_frame: np.ndarray
    akd_per_frame: np.ndarray | None = None
    baseline_akd_per_frame: np.ndarray | None = None
    landmarks_present: int = 0  # landmarks found in the driving frames
    landmarks_missing: int = 0  # of those, not found in the reconstructions
    baseline_landmarks_missing: int = 0
    frames_without_face: int = 0  # driving frames where no face was found
    aed_per_frame: np.ndarray | None = None
    baseline_aed_per_frame: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)

    def summary(self) -> dict[str, float | int | str | None]:
        def rate(missing: int) -> float | None:
            return missing / self.landmarks_present if self.landmarks_present else None

        landmarks = self.akd_per_frame is not None
        return {
            "video": self.video,
            "frames": self.num_frames,
            "l1": float(self.l1_per_frame.mean()),
            "akd": _mean(self.akd_per_frame),
            "mkr": rate(self.landmarks_missing) if landmarks else None,
            "aed": _mean(self.aed_per_frame),
            "baseline_l1": float(self.baseline_l1_per_frame.mean()),
            "baseline_akd": _mean(self.baseline_akd_per_frame),
            "baseline_mkr": rate(self.baseline_landmarks_missing) if landmarks else None,
            "baseline_aed": _mean(self.baseline_aed_per_frame),
            "frames_without_face": self.frames_without_face if landmarks else None,
        }


@dataclass(frozen=True)
class ReconstructionReport:
    """Reconstruction quality over several videos (frame-weighted means, as in the FOMM code).

    ``resolution``: ``model`` (L1 at ``image_size``) or ``full`` (at each video's own size).
    """

    videos: tuple[VideoReconstruction, ...]
    image_size: int
    landmark_size: int
    landmarks: str | None  # the landmark detector's name, None when AKD was not measured
    checkpoint_step: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    identity: str | None = None  # the identity embedding's name, None when AED was not measured
    resolution: str = "model"

    def _pooled(self, name: str) -> np.ndarray | None:
        arrays = [getattr(v, name) for v in self.videos]
        if any(a is None for a in arrays):
            return None
        return np.concatenate(arrays)

    @property
    def l1(self) -> float:
        return float(self._pooled("l1_per_frame").mean())

    @property
    def baseline_l1(self) -> float:
        return float(self._pooled("baseline_l1_per_frame").mean())

    @property
    def akd(self) -> float | None:
        return _mean(self._pooled("akd_per_frame"))

    @property
    def baseline_akd(self) -> float | None:
        return _mean(self._pooled("baseline_akd_per_frame"))

    @property
    def aed(self) -> float | None:
        return _mean(self._pooled("aed_per_frame"))

    @property
    def baseline_aed(self) -> float | None:
        return _mean(self._pooled("baseline_aed_per_frame"))

    def _mkr(self, missing: str) -> float | None:
        present = sum(v.landmarks_present for v in self.videos)
        if self.landmarks is None or present == 0:
            return None
        return sum(getattr(v, missing) for v in self.videos) / present

    @property
    def mkr(self) -> float | None:
        return self._mkr("landmarks_missing")

    @property
    def baseline_mkr(self) -> float | None:
        return self._mkr("baseline_landmarks_missing")

    def to_dict(self) -> dict:
        """Plain data for JSON: overall numbers, per-video summaries, the protocol's settings."""
        return {
            "l1": self.l1, "akd": self.akd, "mkr": self.mkr, "aed": self.aed,
            "baseline_l1": self.baseline_l1, "baseline_akd": self.baseline_akd, "baseline_mkr": self.baseline_mkr,
            "baseline_aed": self.baseline_aed,
            "frames": int(sum(v.num_frames for v in self.videos)),
            "resolution": self.resolution,
            "image_size": self.image_size,
            "landmark_size": self.landmark_size,
            "landmarks": self.landmarks,
            "identity": self.identity,
            "checkpoint_step": self.checkpoint_step,
            "reference_fomm_voxceleb_256": dict(PAPER_VOXCELEB_256),
            "videos": [v.summary() for v in self.videos],
            "notes": list(self.notes),
        }


def _result(scores: FrameScores, video: Path, indices: list[int]) -> VideoReconstruction:
    def array(values: list[float], measured: bool) -> np.ndarray | None:
        return np.asarray(values, dtype=np.float64) if measured else None

    landmarks, identity = scores.detector is not None, scores.embedding is not None
    return VideoReconstruction(
        video=str(video), frame_indices=np.asarray(indices, dtype=np.int64),
        l1_per_frame=array(scores.l1, True), baseline_l1_per_frame=array(scores.baseline_l1, True),
        akd_per_frame=array(scores.akd, landmarks), baseline_akd_per_frame=array(scores.baseline_akd, landmarks),
        landmarks_present=scores.present, landmarks_missing=scores.missing,
        baseline_landmarks_missing=scores.baseline_missing, frames_without_face=scores.no_face,
        aed_per_frame=array(scores.aed, identity), baseline_aed_per_frame=array(scores.baseline_aed, identity),
    )


class _Source(NamedTuple):
    """The source frame as the model sees it ``(1, 3, S, S)`` and at the resolution L1 is measured at."""

    model: torch.Tensor
    measured: torch.Tensor


def _reconstruct(model: Model, source: _Source, crops: list[np.ndarray], views: list[np.ndarray], full: bool,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(reconstructions, driving frames)`` ``(B, 3, H, W)`` at the measured resolution."""
    driving = frames_to_images(np.stack(crops), model.device)
    out = model.network(source.model.expand(len(crops), -1, -1, -1), driving)
    prediction = out.prediction.float().clamp(0, 1)
    if not full:
        return prediction, driving
    height, width = source.measured.shape[-2:]
    truth = frames_to_images(np.stack([resize_frame(v, (width, height)) for v in views]), model.device)
    return full_resolution(prediction, out.motion.flow, out.visibility, source.model, source.measured), truth


@torch.no_grad()
def _evaluate_video(model: Model, video: Path, scores: FrameScores, frames: FrameRange, full: bool, batch_size: int,
                    advance: Callable[[int], None]) -> VideoReconstruction:
    """Reconstruct every frame of ``video`` from its first and score each reconstruction."""
    source: _Source | None = None
    indices: list[int] = []
    for batch in batched(cropped_frames(model, video, frames), batch_size):
        crops, views = [crop for _, crop, _ in batch], [view for _, _, view in batch]
        if source is None:
            source = _Source(frames_to_images(np.array(crops[0][None]), model.device),
                             frames_to_images(np.array((views if full else crops)[0][None]), model.device))
            scores.set_source(images_to_frames(source.measured)[0])
        indices += [index for index, _, _ in batch]
        prediction, truth = _reconstruct(model, source, crops, views, full)
        scores.add_l1((prediction - truth).abs().mean(dim=(1, 2, 3)).cpu().tolist(),
                      (source.measured - truth).abs().mean(dim=(1, 2, 3)).cpu().tolist())
        if scores.faces:
            for driving, predicted in zip(images_to_frames(truth), images_to_frames(prediction)):
                scores.add_faces(driving, predicted)
        advance(len(crops))
    if not indices:
        raise FommError(f"no frames read from {video} (start={frames.start}, stop={frames.stop}, stride={frames.stride})")
    result = _result(scores, video, indices)
    log.info("%s: %s", video, result.summary())
    return result


def _face_models(landmarks: str | LandmarkDetector | None, identity: str | FaceEmbedding | None,
                 ) -> tuple[LandmarkDetector | None, FaceEmbedding | None]:
    detector = landmark_detector(landmarks) if isinstance(landmarks, str) else landmarks
    if isinstance(identity, str):
        if identity != "dlib":
            raise FommError(f"identity embedding must be 'dlib', got '{identity}'")
        identity = DlibFaceEmbedding()
    return detector, identity


def evaluate_reconstruction(
    model: Model | str | os.PathLike,
    videos: Sequence[str | os.PathLike],
    landmarks: str | LandmarkDetector | None = None,
    landmark_size: int = 256,
    frames: FrameRange | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
    identity: str | FaceEmbedding | None = None,
    resolution: str = "model",
) -> ReconstructionReport:
    """Reconstruct each video from its first frame (FOMM protocol) and measure L1, AKD, MKR and AED.

    Args:
        model: a :class:`~fomm_kp.runtime.model.Model` or a checkpoint path.
        videos: held-out videos of the kind the model was trained on.
        landmarks: None (no AKD/MKR), a backend name (``auto``, ``face-alignment``, ``dlib``: see
            :func:`fomm_kp.evaluation.landmarks.landmark_detector`) or a detector object.
        landmark_size: frames are resized to this square size before face metrics; AKD is in its pixels
            (256 as in the papers).
        frames: the frames of each video to use; the source is the first of them.
        progress: hears in frames over all videos.
        identity: None (no AED), ``dlib`` (:class:`~fomm_kp.evaluation.identity.DlibFaceEmbedding`)
            or an embedding object.
        resolution: ``model`` (the papers' protocol at the model's image size) or ``full`` (the
            video's own resolution, the reconstruction rendered there as ``animate`` does).
    """
    if not videos:
        raise FommError("no videos to evaluate")
    if resolution not in RESOLUTIONS:
        raise FommError(f"resolution must be one of {', '.join(RESOLUTIONS)}, got '{resolution}'")
    if not isinstance(model, Model):
        model = Model.load(model)
    frames = frames or FrameRange()
    if batch_size < 1 or landmark_size < 16:
        raise FommError(f"bad settings: batch_size={batch_size}, landmark_size={landmark_size}")
    paths = [Path(v) for v in videos]
    total = sum(len(frames.indices(probe(path).num_frames)) for path in paths)
    detector, embedding = _face_models(landmarks, identity)
    notes = [] if model.crop.whole_frames else ["the model was trained on crops: frames were cropped like its training frames"]
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        report(progress, done, total, "reconstructing")

    results = tuple(_evaluate_video(model, path, FrameScores(detector, embedding, landmark_size), frames,
                                    resolution == "full", batch_size, advance) for path in paths)
    if detector is not None and sum(v.landmarks_present for v in results) == 0:
        notes.append("no face landmarks were found in the driving frames: AKD is undefined")

    def name(thing: object) -> str | None:
        return None if thing is None else getattr(thing, "name", type(thing).__name__)

    return ReconstructionReport(results, model.config.model.image_size, landmark_size, name(detector), model.step,
                                tuple(notes), name(embedding), resolution)
