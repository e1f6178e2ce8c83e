"""Supervised 68-point face landmarks for the Average Keypoint Distance (AKD) of face reconstructions.

Two backends, both imported lazily and both working offline once installed:

* ``face-alignment`` (2D-FAN, Bulat & Tzimiropoulos 2017): the landmark detector the FOMM papers
  used for AKD. ``pip install face-alignment``; it downloads its weights on first use, which this
  package never does: place the two files ``2DFAN4-cd938726ad.zip`` (landmarks) and
  ``s3fd-619a316812.pth`` (face detector) in ``<torch hub dir>/checkpoints/`` (by default
  ``~/.cache/torch/hub/checkpoints/``; ``$TORCH_HOME/hub/checkpoints/`` when ``TORCH_HOME`` is set).
  They are published by the face-alignment project (see its README).
* ``dlib`` (HOG face detector + the 68-point ensemble-of-regression-trees shape predictor):
  ``pip install dlib-bin face-recognition-models`` (the ``faces`` extra), prebuilt wheels that carry
  the model file, so nothing is downloaded. The 68-point model was trained on the iBUG 300-W data
  set, whose licence excludes commercial use: the AKD numbers are for research comparison only.

Both give ``(68, 2)`` pixel coordinates (x, y) of the largest face in an image, or None when no
face is found. The two backends' points are not interchangeable: compare AKD only between runs of
the same backend.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from fomm_kp.errors import FommError
from fomm_kp.optional import available, require

__all__ = [
    "LandmarkDetector",
    "DlibLandmarks",
    "FaceAlignmentLandmarks",
    "landmark_detector",
    "face_alignment_weight_paths",
    "dlib_predictor_path",
    "face_model_file",
    "BACKENDS",
    "check_landmarks",
]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "face-alignment", "dlib")
FAN_WEIGHTS = "2DFAN4-cd938726ad.zip"
S3FD_WEIGHTS = "s3fd-619a316812.pth"
DLIB_PREDICTOR = "shape_predictor_68_face_landmarks.dat"
DLIB_PREDICTOR_ENV = "FOMM_KP_DLIB_PREDICTOR"


class LandmarkDetector(Protocol):
    """Finds 68 face landmarks in a uint8 ``(H, W, 3)`` RGB image: ``(68, 2)`` pixels, or None."""

    name: str

    def __call__(self, image: np.ndarray) -> np.ndarray | None: ...


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise FommError(f"landmarks need a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def face_alignment_weight_paths() -> tuple[Path, Path]:
    """Where face-alignment looks for its weights: ``(<hub>/checkpoints/2DFAN4-..., <hub>/checkpoints/s3fd-...)``."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return folder / FAN_WEIGHTS, folder / S3FD_WEIGHTS


def dlib_predictor_path() -> Path | None:
    """The 68-point dlib predictor: ``$FOMM_KP_DLIB_PREDICTOR``, else the face-recognition-models copy, else None."""
    explicit = os.environ.get(DLIB_PREDICTOR_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FommError(f"{DLIB_PREDICTOR_ENV}={explicit}: no such file")
        return path
    return face_model_file(DLIB_PREDICTOR)


def face_model_file(name: str) -> Path | None:
    """A model file shipped in ``face-recognition-models``, or None when it is not installed.

    Located without importing the package: its ``__init__`` needs setuptools' pkg_resources.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / name
        if path.is_file():
            return path
    return None


class DlibLandmarks:
    """dlib's HOG face detector + 68-point shape predictor on the largest detected face."""

    name = "dlib 68-point shape predictor (iBUG 300-W; non-commercial model licence)"

    def __init__(self, upsample: int = 1) -> None:
        dlib = require("dlib", "face landmarks with dlib")
        path = dlib_predictor_path()
        if path is None:
            raise FommError(
                f"dlib's {DLIB_PREDICTOR} was not found: pip install face-recognition-models, "
                f"or set {DLIB_PREDICTOR_ENV} to the file"
            )
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(path))
        self.upsample = int(upsample)
        log.info("face landmarks: dlib predictor %s", path)

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        image = _check_image(image)
        faces = self.detector(image, self.upsample)
        if len(faces) == 0:
            return None
        face = max(faces, key=lambda r: r.width() * r.height())
        shape = self.predictor(image, face)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], dtype=np.float32)


class FaceAlignmentLandmarks:
    """face-alignment's 2D-FAN on the largest face found by its S3FD detector (the FOMM papers' AKD)."""

    name = "face-alignment 2D-FAN (68 points)"

    def __init__(self, device: str = "cpu") -> None:
        if not available("face_alignment"):
            require("face_alignment", "face landmarks with face-alignment")
        fan, s3fd = face_alignment_weight_paths()
        missing = [p for p in (fan, s3fd) if not p.is_file()]
        if missing:
            raise FommError(
                f"face-alignment weights are missing ({', '.join(p.name for p in missing)}): place "
                f"{FAN_WEIGHTS} and {S3FD_WEIGHTS} in {fan.parent} (they are never downloaded here)"
            )
        import face_alignment

        kind = getattr(face_alignment.LandmarksType, "TWO_D", None) or getattr(face_alignment.LandmarksType, "_2D")
        self.model = face_alignment.FaceAlignment(kind, device=device, flip_input=False)
        log.info("face landmarks: face-alignment with weights in %s", fan.parent)

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        image = _check_image(image)
        found = self.model.get_landmarks_from_image(image)
        if not found:
            return None

        def extent(points: np.ndarray) -> float:
            span = points.max(axis=0) - points.min(axis=0)
            return float(span[0] * span[1])

        return np.asarray(max(found, key=extent)[:, :2], dtype=np.float32)


def _face_alignment_ready() -> bool:
    if not available("face_alignment"):
        return False
    return all(p.is_file() for p in face_alignment_weight_paths())


def landmark_detector(backend: str = "auto", device: str = "cpu") -> LandmarkDetector:
    """A 68-point face landmark detector.

    ``auto`` picks face-alignment when it is installed and its weights are in place, else dlib
    (dlib-bin + face-recognition-models); a clear error names what to install when neither is.
    """
    if backend not in BACKENDS:
        raise FommError(f"landmark backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    if backend == "face-alignment":
        return FaceAlignmentLandmarks(device)
    if backend == "dlib":
        return DlibLandmarks()
    if _face_alignment_ready():
        return FaceAlignmentLandmarks(device)
    if available("dlib") and dlib_predictor_path() is not None:
        fan, s3fd = face_alignment_weight_paths()
        log.info("face-alignment or its weights (%s, %s) not found: using dlib", fan, s3fd)
        return DlibLandmarks()
    fan, _ = face_alignment_weight_paths()
    raise FommError(
        'no face landmark detector: pip install "fomm_kp[faces]" (dlib, works offline), '
        f'or pip install "fomm_kp[faces-fan]" and place {FAN_WEIGHTS} and {S3FD_WEIGHTS} in {fan.parent}'
    )


def check_landmarks(backend: str) -> None:
    """What :func:`landmark_detector` would refuse (unknown backend, package not installed, no model
    files), checked without loading a model: one line naming what to install."""
    if backend not in BACKENDS:
        raise FommError(f"landmark backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    if backend == "dlib" or (backend == "auto" and not _face_alignment_ready() and available("dlib")):
        require("dlib", "face landmarks with dlib")
        if dlib_predictor_path() is None:
            raise FommError(f"dlib's {DLIB_PREDICTOR} was not found: pip install face-recognition-models, "
                            f"or set {DLIB_PREDICTOR_ENV} to the file")
    elif backend == "face-alignment":
        require("face_alignment", "face landmarks with face-alignment")
        missing = [p for p in face_alignment_weight_paths() if not p.is_file()]
        if missing:
            raise FommError(f"face-alignment weights are missing ({', '.join(p.name for p in missing)}): place "
                            f"{FAN_WEIGHTS} and {S3FD_WEIGHTS} in {missing[0].parent} (they are never downloaded here)")
    elif backend == "auto" and not _face_alignment_ready():
        fan, _ = face_alignment_weight_paths()
        raise FommError(
            'no face landmark detector: pip install "fomm_kp[faces]" (dlib, works offline), '
            f'or pip install "fomm_kp[faces-fan]" and place {FAN_WEIGHTS} and {S3FD_WEIGHTS} in {fan.parent}'
        )
