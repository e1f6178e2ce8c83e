"""Runtime backends for a detector network (PyTorch, ONNX Runtime, TensorRT) behind one interface.

A backend takes crops already resized to the detector's input size, uint8 ``(B, S, S, 3)``, and
returns :class:`RawOutputs` in the normalised crop coordinates of
:class:`~fomm_kp.models.KeypointOutput`. :class:`DetectorModel` wraps a backend with the
:class:`~fomm_kp.runtime.detector.Detector` surface, so tracking and evaluation run on any backend
and return the same :class:`~fomm_kp.tracks.Tracks`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, NamedTuple, Protocol

import numpy as np
import torch

from fomm_kp.config import Config
from fomm_kp.crops import CropSettings
from fomm_kp.errors import FommError
from fomm_kp.images import frames_to_array
from fomm_kp.models import KeypointNetwork
from fomm_kp.runtime.detector import Detections, detections_in_frame, detector_crops
from fomm_kp.runtime.onnx_graph import INPUT_NAME, OUTPUT_NAMES, onnx_session

__all__ = [
    "RawOutputs", "Backend", "TorchBackend", "OnnxBackend", "TensorRTBackend", "DetectorModel",
    "tensorrt_available", "require_tensorrt",
]

log = logging.getLogger(__name__)


class RawOutputs(NamedTuple):
    """Detector outputs for B crops, float32 numpy, normalised crop coordinates (x first, [-1, 1])."""

    keypoints: np.ndarray  # (B, K, 2)
    jacobians: np.ndarray  # (B, K, 2, 2)
    covariances: np.ndarray  # (B, K, 2, 2)
    scores: np.ndarray  # (B, K)


class Backend(Protocol):
    """Runs a detector on uint8 crops ``(B, S, S, 3)`` with ``S = input_size``."""

    name: str
    input_size: int
    num_keypoints: int

    def __call__(self, crops: np.ndarray) -> RawOutputs: ...


def _run_in_chunks(run: Callable[[np.ndarray], list[np.ndarray]], images: np.ndarray, fixed_batch: int | None) -> list[np.ndarray]:
    """Run a static-batch model over any number of images (the last chunk is padded)."""
    if fixed_batch is None or len(images) == fixed_batch:
        return run(images)
    parts: list[list[np.ndarray]] = []
    for start in range(0, len(images), fixed_batch):
        chunk = images[start:start + fixed_batch]
        n = len(chunk)
        if n < fixed_batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed_batch - n, axis=0)])
        parts.append([o[:n] for o in run(chunk)])
    return [np.concatenate(p) for p in zip(*parts)]


class TorchBackend:
    """A detector network (teacher ``KeypointDetector`` or ``StudentDetector``) run by PyTorch."""

    name = "torch"

    def __init__(self, network: KeypointNetwork, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.network = network.to(self.device).eval()
        self.input_size = network.config.input_size
        self.num_keypoints = network.config.num_keypoints

    @torch.no_grad()
    def __call__(self, crops: np.ndarray) -> RawOutputs:
        images = torch.from_numpy(frames_to_array(crops, self.input_size)).to(self.device)
        out = self.network(images)
        return RawOutputs(*(t.float().cpu().numpy() for t in (out.keypoints, out.jacobians, out.covariances, out.scores)))


class OnnxBackend:
    """An exported detector (:mod:`fomm_kp.runtime.onnx_graph`) run by ONNX Runtime (CPU by default)."""

    name = "onnx"

    def __init__(self, model: bytes | str | os.PathLike, threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        self.session = onnx_session(model, threads, providers)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or len(inputs[0].shape) != 4:
            raise FommError(f"not a fomm_kp detector graph: expected one input '{INPUT_NAME}' (B, 3, S, S)")
        shape = inputs[0].shape
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.input_size = int(shape[2])
        self.output_names = list(OUTPUT_NAMES)
        self.num_keypoints = int(self.session.get_outputs()[0].shape[1])
        self.input_name = INPUT_NAME

    def __call__(self, crops: np.ndarray) -> RawOutputs:
        images = frames_to_array(crops, self.input_size)
        outputs = _run_in_chunks(lambda x: self.session.run(self.output_names, {self.input_name: x}),
                                 images, self.fixed_batch)
        return RawOutputs(*(np.asarray(o, dtype=np.float32) for o in outputs))


class TensorRTBackend:
    """A serialised TensorRT engine (built by ``fomm-kp export --tensorrt`` or ``trtexec``), with
    input and output buffers held as CUDA tensors of torch. Needs TensorRT >= 8.5 (name-based I/O)."""

    name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike) -> None:
        trt = require_tensorrt()
        if not torch.cuda.is_available():
            raise FommError("the tensorrt backend needs a CUDA GPU visible to torch")
        path = Path(engine_path)
        if not path.is_file():
            raise FommError(f"TensorRT engine not found: {path}")
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise FommError(f"{path} is not a TensorRT engine for this TensorRT version and GPU")
        self.context = self.engine.create_execution_context()
        self.input_name = INPUT_NAME
        self.output_names = list(OUTPUT_NAMES)
        shape = tuple(self.engine.get_tensor_shape(INPUT_NAME))
        self.fixed_batch = None if shape[0] == -1 else int(shape[0])
        self.input_size = int(shape[2])
        self.num_keypoints = int(self.engine.get_tensor_shape(OUTPUT_NAMES[0])[1])
        self.stream = torch.cuda.Stream()

    def _run(self, images: np.ndarray) -> list[np.ndarray]:
        b = len(images)
        with torch.cuda.stream(self.stream):
            x = torch.from_numpy(images).cuda(non_blocking=True)
            self.context.set_input_shape(self.input_name, tuple(x.shape))
            self.context.set_tensor_address(self.input_name, int(x.data_ptr()))
            k = self.num_keypoints
            shapes = {"keypoints": (b, k, 2), "jacobians": (b, k, 2, 2), "covariances": (b, k, 2, 2), "scores": (b, k)}
            outputs = {name: torch.empty(shapes[name], dtype=torch.float32, device="cuda") for name in self.output_names}
            for name, tensor in outputs.items():
                self.context.set_tensor_address(name, int(tensor.data_ptr()))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise FommError("TensorRT failed to run the engine")
        self.stream.synchronize()
        return [outputs[name].cpu().numpy() for name in self.output_names]

    def __call__(self, crops: np.ndarray) -> RawOutputs:
        outputs = _run_in_chunks(self._run, frames_to_array(crops, self.input_size), self.fixed_batch)
        return RawOutputs(*outputs)


class DetectorModel:
    """A detector behind a :class:`Backend`: a :class:`~fomm_kp.runtime.detector.Detector`, as
    :class:`~fomm_kp.runtime.model.Model` is; ``crop`` is read from ``meta`` once."""

    def __init__(self, backend: Backend, config: Config, meta: dict[str, Any], kind: str) -> None:
        self.backend = backend
        self.config = config
        self.meta = dict(meta)
        self.crop = CropSettings.from_meta(self.meta)
        self.kind = kind

    @property
    def num_keypoints(self) -> int:
        return self.backend.num_keypoints

    @property
    def device(self) -> torch.device:
        """The torch device of the torch backend; CPU for the others (their inputs are numpy)."""
        return getattr(self.backend, "device", torch.device("cpu"))

    @property
    def detector_size(self) -> int:
        return self.backend.input_size

    def __repr__(self) -> str:
        return (f"DetectorModel({self.kind}, backend={self.backend.name}, input {self.detector_size} px, "
                f"{self.num_keypoints} keypoints)")

    def detect(self, frames: np.ndarray, boxes: np.ndarray | None = None) -> Detections:
        """Detect keypoints in uint8 frames ``(B, H, W, 3)``, optionally cropped to ``boxes`` ``(B, 4)``
        (x0, y0, x1, y1; a fifth value turns the crop); coordinates in pixels of the uncropped frames (as :meth:`Model.detect`)."""
        return self.detect_resized(*detector_crops(frames, boxes, self.detector_size))

    def detect_resized(self, crops: np.ndarray, boxes: np.ndarray) -> Detections:
        """Detect in crops ``(B, S, S, 3)`` already resized to the input size; map back through ``boxes``."""
        out = self.backend(crops)
        return detections_in_frame(out.keypoints, out.scores, out.jacobians, out.covariances, boxes)


def tensorrt_available() -> tuple[bool, str]:
    """Whether TensorRT's Python package imports here, and its version or the import error."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        return False, f"{exc.__class__.__name__}: {exc}"
    return True, str(getattr(trt, "__version__", "unknown"))


def require_tensorrt() -> Any:
    """The ``tensorrt`` module, or :class:`FommError` saying how to build engines without it."""
    ok, detail = tensorrt_available()
    if not ok:
        raise FommError(
            f"TensorRT's Python package is not importable here ({detail}). Build the engine on the "
            "target instead: scripts/jetson_build_engine.sh MODEL.onnx (trtexec, JetPack 5 / TensorRT 8.5), "
            "or install TensorRT with its Python bindings"
        )
    import tensorrt as trt

    return trt
