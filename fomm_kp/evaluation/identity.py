"""Face identity embeddings for the Average Euclidean Distance (AED) of face reconstructions.

AED (the FOMM papers' identity metric): the mean, over frames, of the Euclidean distance between an
identity embedding of the driving frame and one of its reconstruction; 0 when the reconstruction
shows the same identity as the truth (a clip against itself gives exactly 0). The papers used an
OpenFace re-identification network; here it is dlib's ResNet face-recognition model (128-d
descriptors; two faces of one person are usually within 0.6 of each other, dlib's threshold),
from ``face-recognition-models``: ``pip install dlib-bin face-recognition-models`` (the ``faces``
extra), prebuilt wheels that carry the model files, so nothing is downloaded. AED values from this
embedding are not comparable with the papers' OpenFace numbers.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.evaluation.landmarks import face_model_file

__all__ = ["FaceEmbedding", "DlibFaceEmbedding", "identity_distance"]

log = logging.getLogger(__name__)

RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"


class FaceEmbedding(Protocol):
    """An identity descriptor of the largest face in a uint8 ``(H, W, 3)`` RGB image, or None."""

    name: str

    def __call__(self, image: np.ndarray) -> np.ndarray | None: ...


class DlibFaceEmbedding:
    """dlib's HOG face detector, 5-point alignment and ResNet face-recognition model (128-d)."""

    name = "dlib ResNet face recognition (128-d, face-recognition-models)"

    def __init__(self, upsample: int = 1) -> None:
        try:
            import dlib
        except ImportError:
            raise FommError("dlib is not installed: pip install dlib-bin face-recognition-models "
                            "(or pip install 'fomm_kp[faces]')") from None
        files = [face_model_file(RECOGNITION_MODEL), face_model_file(SHAPE_MODEL)]
        if any(f is None for f in files):
            raise FommError(f"{RECOGNITION_MODEL} or {SHAPE_MODEL} was not found: pip install face-recognition-models")
        self.detector = dlib.get_frontal_face_detector()
        self.shapes = dlib.shape_predictor(str(files[1]))
        self.model = dlib.face_recognition_model_v1(str(files[0]))
        self.upsample = int(upsample)
        log.info("face identity: %s", files[0])

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise FommError(f"face identity needs a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
        faces = self.detector(image, self.upsample)
        if len(faces) == 0:
            return None
        face = max(faces, key=lambda r: r.width() * r.height())
        return np.asarray(self.model.compute_face_descriptor(image, self.shapes(image, face)), dtype=np.float64)


def identity_distance(reference: np.ndarray | None, candidate: np.ndarray | None) -> float:
    """Euclidean distance between two identity descriptors; NaN when either face was not found."""
    if reference is None or candidate is None:
        return float("nan")
    return float(np.linalg.norm(np.asarray(reference) - np.asarray(candidate)))
