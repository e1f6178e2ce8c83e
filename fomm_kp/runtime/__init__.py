"""A trained detector at work: loading it, running it on any backend, tracking videos with it.

:mod:`~fomm_kp.runtime.detector` defines the one :class:`Detector` surface (``detect`` frames →
:class:`Detections` in frame pixels); :mod:`~fomm_kp.runtime.model` the teacher FOMM behind it,
:mod:`~fomm_kp.runtime.backends` the same for a network on PyTorch, ONNX Runtime or TensorRT;
:mod:`~fomm_kp.runtime.networks` and :mod:`~fomm_kp.runtime.onnx_graph` the detector network of a
checkpoint and its exported graph; :mod:`~fomm_kp.runtime.loading` picks among them
(:func:`load_model`) and :mod:`~fomm_kp.runtime.tracking` streams a video through one (:func:`track`).
"""

from fomm_kp.runtime.backends import DetectorModel
from fomm_kp.runtime.detector import Detections, Detector, choose_device
from fomm_kp.runtime.loading import load_model
from fomm_kp.runtime.model import Model
from fomm_kp.runtime.tracking import track

__all__ = ["Detector", "Detections", "DetectorModel", "Model", "choose_device", "load_model", "track"]
