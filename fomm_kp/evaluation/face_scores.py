"""Per-frame scores of one reconstructed video: L1, and for faces AKD, MKR and AED, beside copying the source.

:class:`FrameScores` collects, frame by frame, the model's scores and those of the copy-the-source
baseline (the source frame itself as the "reconstruction" of every frame), so that every report
can put the two side by side. Face metrics are measured on images resized to a common square size
(256 px as in the papers): landmarks (:mod:`fomm_kp.evaluation.landmarks`) for AKD and MKR, an
identity embedding (:mod:`fomm_kp.evaluation.identity`) for AED.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.evaluation.identity import FaceEmbedding, identity_distance
from fomm_kp.evaluation.landmarks import LandmarkDetector
from fomm_kp.video import resize_frame

__all__ = ["keypoint_distance", "FrameScores"]


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


@dataclass
class _Face:
    """Landmarks and identity of one image (each None when not measured or no face was found)."""

    landmarks: np.ndarray | None = None
    identity: np.ndarray | None = None


@dataclass
class FrameScores:
    """What one video's frames gave so far. Per-frame lists; face counts over the whole video.

    ``detector`` (landmarks) and ``embedding`` (identity) are optional; ``face_size`` is the side
    of the square images faces are measured on.
    """

    detector: LandmarkDetector | None
    embedding: FaceEmbedding | None
    face_size: int
    source: _Face = field(default_factory=_Face)
    l1: list[float] = field(default_factory=list)
    baseline_l1: list[float] = field(default_factory=list)
    akd: list[float] = field(default_factory=list)
    baseline_akd: list[float] = field(default_factory=list)
    aed: list[float] = field(default_factory=list)
    baseline_aed: list[float] = field(default_factory=list)
    present: int = 0  # landmarks found in the driving frames
    missing: int = 0  # of those, not found in the reconstructions
    baseline_missing: int = 0
    no_face: int = 0  # driving frames where no face was found

    @property
    def faces(self) -> bool:
        return self.detector is not None or self.embedding is not None

    def _face(self, image: np.ndarray) -> _Face:
        image = resize_frame(image, self.face_size)
        return _Face(None if self.detector is None else self.detector(image),
                     None if self.embedding is None else self.embedding(image))

    def set_source(self, source: np.ndarray) -> None:
        """The source frame uint8 ``(H, W, 3)``: the copy-the-source baseline's reconstruction."""
        if self.faces:
            self.source = self._face(source)

    def add_l1(self, l1: list[float], baseline_l1: list[float]) -> None:
        self.l1 += l1
        self.baseline_l1 += baseline_l1

    def add_faces(self, driving: np.ndarray, predicted: np.ndarray) -> None:
        """Face metrics of one frame: uint8 ``(H, W, 3)`` driving frame and its reconstruction."""
        if not self.faces:
            return
        truth, guess = self._face(driving), self._face(predicted)
        if self.detector is not None:
            self.no_face += truth.landmarks is None
            distance, present, missing = keypoint_distance(truth.landmarks, guess.landmarks)
            base_distance, _, base_missing = keypoint_distance(truth.landmarks, self.source.landmarks)
            self.akd.append(distance)
            self.baseline_akd.append(base_distance)
            self.present += present
            self.missing += missing
            self.baseline_missing += base_missing
        if self.embedding is not None:
            self.aed.append(identity_distance(truth.identity, guess.identity))
            self.baseline_aed.append(identity_distance(truth.identity, self.source.identity))
