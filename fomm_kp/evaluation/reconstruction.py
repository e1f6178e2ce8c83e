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

Beside the model, the same numbers for copying the source frame unchanged (``baseline_*``): a
model that does not capture the motion scores close to it. The learned background/camera motion is
used here, as in training (it is switched off only when animating another video).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from fomm_kp.animation.render import cropped_frames
from fomm_kp.errors import FommError
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
]

log = logging.getLogger(__name__)

# The FOMM paper's VoxCeleb numbers at 256 px (Table 3, full model): a reference point only.
PAPER_VOXCELEB_256 = {"l1": 0.043, "akd": 1.294}


def keypoint_distance(reference: np.ndarray | None, candidate: np.ndarray | None) -> tuple[float, int, int]:
    """Distance between two landmark sets ``(K, 2)`` (None = not found; NaN rows = missing points).

    Returns ``(mean Euclidean distance over points present in both (NaN if none), points present in
    the reference, of those the points missing in the candidate)``.
    """
    if reference is None:
        return float("nan"), 0, 0
    reference = np.asarray(reference, dtype=np.float64)
    present = np.isfinite(reference).all(axis=1)
    if candidate is None:
        return float("nan"), int(present.sum()), int(present.sum())
    candidate = np.asarray(candidate, dtype=np.float64)
    if candidate.shape != reference.shape:
        raise FommError(f"landmark sets differ in shape: {reference.shape} vs {candidate.shape}")
    found = np.isfinite(candidate).all(axis=1)
    both = present & found
    distance = float(np.linalg.norm(reference[both] - candidate[both], axis=1).mean()) if both.any() else float("nan")
    return distance, int(present.sum()), int((present & ~found).sum())


@dataclass(frozen=True)
class VideoReconstruction:
    """Reconstruction of one video. Per-frame arrays are ``(T,)``; AKD entries NaN where undefined."""

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

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)

    def summary(self) -> dict[str, float | int | str | None]:
        def mean(values: np.ndarray | None) -> float | None:
            if values is None or not np.isfinite(values).any():
                return None
            return float(np.nanmean(values))

        def rate(missing: int) -> float | None:
            return missing / self.landmarks_present if self.landmarks_present else None

        return {
            "video": self.video,
            "frames": self.num_frames,
            "l1": float(self.l1_per_frame.mean()),
            "akd": mean(self.akd_per_frame),
            "mkr": rate(self.landmarks_missing) if self.akd_per_frame is not None else None,
            "baseline_l1": float(self.baseline_l1_per_frame.mean()),
            "baseline_akd": mean(self.baseline_akd_per_frame),
            "baseline_mkr": rate(self.baseline_landmarks_missing) if self.akd_per_frame is not None else None,
            "frames_without_face": self.frames_without_face if self.akd_per_frame is not None else None,
        }


@dataclass(frozen=True)
class ReconstructionReport:
    """Reconstruction quality over several videos (frame-weighted means, as in the FOMM code)."""

    videos: tuple[VideoReconstruction, ...]
    image_size: int
    landmark_size: int
    landmarks: str | None  # the landmark detector's name, None when AKD was not measured
    checkpoint_step: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

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

    def _akd(self, name: str) -> float | None:
        values = self._pooled(name)
        return float(np.nanmean(values)) if values is not None and np.isfinite(values).any() else None

    @property
    def akd(self) -> float | None:
        return self._akd("akd_per_frame")

    @property
    def baseline_akd(self) -> float | None:
        return self._akd("baseline_akd_per_frame")

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
            "l1": self.l1,
            "akd": self.akd,
            "mkr": self.mkr,
            "baseline_l1": self.baseline_l1,
            "baseline_akd": self.baseline_akd,
            "baseline_mkr": self.baseline_mkr,
            "frames": int(sum(v.num_frames for v in self.videos)),
            "image_size": self.image_size,
            "landmark_size": self.landmark_size,
            "landmarks": self.landmarks,
            "checkpoint_step": self.checkpoint_step,
            "reference_fomm_voxceleb_256": dict(PAPER_VOXCELEB_256),
            "videos": [v.summary() for v in self.videos],
            "notes": list(self.notes),
        }


def _landmarks(detector: LandmarkDetector, image: np.ndarray, size: int) -> np.ndarray | None:
    return detector(resize_frame(image, size))


@dataclass
class _Scores:
    """What one video's frames gave so far: L1 per frame and, with a landmark detector, AKD and counts."""

    detector: LandmarkDetector | None
    landmark_size: int
    source_landmarks: np.ndarray | None = None
    l1: list[float] = field(default_factory=list)
    baseline_l1: list[float] = field(default_factory=list)
    akd: list[float] = field(default_factory=list)
    baseline_akd: list[float] = field(default_factory=list)
    present: int = 0
    missing: int = 0
    baseline_missing: int = 0
    no_face: int = 0

    def add_landmarks(self, driving: np.ndarray, predicted: np.ndarray) -> None:
        truth = _landmarks(self.detector, driving, self.landmark_size)
        self.no_face += truth is None
        distance, present, missing = keypoint_distance(truth, _landmarks(self.detector, predicted, self.landmark_size))
        base_distance, _, base_missing = keypoint_distance(truth, self.source_landmarks)
        self.akd.append(distance)
        self.baseline_akd.append(base_distance)
        self.present += present
        self.missing += missing
        self.baseline_missing += base_missing

    def result(self, video: Path, indices: list[int]) -> VideoReconstruction:
        with_akd = self.detector is not None
        return VideoReconstruction(
            video=str(video), frame_indices=np.asarray(indices, dtype=np.int64),
            l1_per_frame=np.asarray(self.l1, dtype=np.float64),
            baseline_l1_per_frame=np.asarray(self.baseline_l1, dtype=np.float64),
            akd_per_frame=np.asarray(self.akd, dtype=np.float64) if with_akd else None,
            baseline_akd_per_frame=np.asarray(self.baseline_akd, dtype=np.float64) if with_akd else None,
            landmarks_present=self.present, landmarks_missing=self.missing,
            baseline_landmarks_missing=self.baseline_missing, frames_without_face=self.no_face,
        )


@torch.no_grad()
def _evaluate_video(model: Model, video: Path, detector: LandmarkDetector | None, landmark_size: int,
                    frames: FrameRange, batch_size: int, advance: Callable[[int], None]) -> VideoReconstruction:
    """Reconstruct every frame of ``video`` from its first and score each reconstruction."""
    scores = _Scores(detector, landmark_size)
    source_images: torch.Tensor | None = None
    indices: list[int] = []
    for batch in batched(cropped_frames(model, video, frames), batch_size):
        crops = [crop for _, crop, _ in batch]
        if source_images is None:
            source_images = frames_to_images(np.array(crops[0][None]), model.device)
            scores.source_landmarks = _landmarks(detector, crops[0], landmark_size) if detector is not None else None
        indices += [index for index, _, _ in batch]
        driving = frames_to_images(np.stack(crops), model.device)
        prediction = model.network(source_images.expand(len(crops), -1, -1, -1), driving).prediction.float().clamp(0, 1)
        scores.l1.extend((prediction - driving).abs().mean(dim=(1, 2, 3)).cpu().tolist())
        scores.baseline_l1.extend((source_images - driving).abs().mean(dim=(1, 2, 3)).cpu().tolist())
        if detector is not None:
            for crop, predicted in zip(crops, images_to_frames(prediction)):
                scores.add_landmarks(crop, predicted)
        advance(len(crops))
    if not indices:
        raise FommError(f"no frames read from {video} (start={frames.start}, stop={frames.stop}, stride={frames.stride})")
    result = scores.result(video, indices)
    log.info("%s: %s", video, result.summary())
    return result


def evaluate_reconstruction(
    model: Model | str | os.PathLike,
    videos: Sequence[str | os.PathLike],
    landmarks: str | LandmarkDetector | None = None,
    landmark_size: int = 256,
    frames: FrameRange | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> ReconstructionReport:
    """Reconstruct each video from its first frame (FOMM protocol) and measure L1, AKD and MKR.

    Args:
        model: a :class:`~fomm_kp.runtime.model.Model` or a checkpoint path.
        videos: held-out videos of the kind the model was trained on.
        landmarks: None (L1 only), a backend name (``auto``, ``face-alignment``, ``dlib``: see
            :func:`fomm_kp.evaluation.landmarks.landmark_detector`) or a detector object.
        landmark_size: frames are resized to this square size before landmark detection; AKD is
            in its pixels (256 as in the papers).
        frames: the frames of each video to use; the source is the first of them.
        progress: hears in frames over all videos.
    """
    if not videos:
        raise FommError("no videos to evaluate")
    if not isinstance(model, Model):
        model = Model.load(model)
    frames = frames or FrameRange()
    if batch_size < 1 or landmark_size < 16:
        raise FommError(f"bad settings: batch_size={batch_size}, landmark_size={landmark_size}")
    paths = [Path(v) for v in videos]
    total = sum(len(frames.indices(probe(path).num_frames)) for path in paths)
    detector = landmark_detector(landmarks) if isinstance(landmarks, str) else landmarks
    notes = [] if model.crop.whole_frames else ["the model was trained on crops: frames were cropped like its training frames"]
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        report(progress, done, total, "reconstructing")

    results = tuple(_evaluate_video(model, path, detector, landmark_size, frames, batch_size, advance) for path in paths)
    name = getattr(detector, "name", type(detector).__name__) if detector is not None else None
    report_ = ReconstructionReport(results, model.config.model.image_size, landmark_size, name, model.step, tuple(notes))
    if detector is not None and report_.mkr is None:
        notes.append("no face landmarks were found in the driving frames: AKD is undefined")
        report_ = dataclasses.replace(report_, notes=tuple(notes))
    return report_
