"""The First Order Motion Model networks."""

from fomm_kp.models.dense_motion import DenseMotionNetwork, MotionOutput
from fomm_kp.models.fomm import FOMM, Reconstruction
from fomm_kp.models.generator import Generator, GeneratorOutput
from fomm_kp.models.keypoint_detector import KeypointDetector, KeypointOutput

__all__ = [
    "KeypointDetector",
    "KeypointOutput",
    "DenseMotionNetwork",
    "MotionOutput",
    "Generator",
    "GeneratorOutput",
    "FOMM",
    "Reconstruction",
]
