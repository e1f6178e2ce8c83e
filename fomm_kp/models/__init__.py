"""The networks: the First Order Motion Model (keypoint detector, dense motion, generator, the
learned background motion) and the distilled student detector; building blocks in ``blocks``.
Outputs are NamedTuples (:class:`KeypointOutput`, :class:`MotionOutput`, :class:`Reconstruction`)."""

from fomm_kp.models.dense_motion import DenseMotionNetwork, MotionOutput
from fomm_kp.models.fomm import FOMM, Reconstruction
from fomm_kp.models.generator import Generator, GeneratorOutput
from fomm_kp.models.keypoint_detector import KeypointDetector, KeypointNetwork, KeypointOutput

__all__ = [
    "KeypointDetector",
    "KeypointOutput",
    "KeypointNetwork",
    "DenseMotionNetwork",
    "MotionOutput",
    "Generator",
    "GeneratorOutput",
    "FOMM",
    "Reconstruction",
]
