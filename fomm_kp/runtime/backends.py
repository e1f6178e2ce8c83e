"""Runtime backends for a keypoint detector (PyTorch, ONNX Runtime, TensorRT) behind one interface.

A backend takes crops already resized to the detector's input size, uint8 ``(B, S, S, 3)``, and
returns :class:`RawOutputs` in the normalised crop coordinates of
:class:`~fomm_kp.models.keypoint_detector.KeypointOutput`. :class:`DetectorModel` wraps a backend
with the tracking surface of :class:`fomm_kp.inference.Model` (``detect``, ``detect_resized``,
``num_keypoints``, ``detector_size``, ``config``, ``meta``), so :func:`fomm_kp.api.track` and the
evaluation harness run on any backend and return the same :class:`~fomm_kp.tracks.Tracks`.

    model = load_for_tracking("student.pt", backend="onnx")     # ONNX Runtime on the CPU
    tracks = fomm_kp.track("mouse.mp4", model)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np
import torch

from fomm_kp.config import Config
from fomm_kp.errors import FommError
from fomm_kp.runtime.model import Detections, Model, _to_pixels, choose_device, detector_crops

__all__ = [
    "BACKENDS",
    "RawOutputs",
    "Backend",
    "TorchBackend",
    "OnnxBackend",
    "TensorRTBackend",
    "DetectorModel",
    "crops_to_images",
    "onnx_session",
    "onnxruntime_available",
    "resolve_backend",
    "load_for_tracking",
]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx", "tensorrt")
BackendName = Literal["auto", "torch", "onnx", "tensorrt"]


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


def crops_to_images(crops: np.ndarray, size: int) -> np.ndarray:
    """uint8 crops ``(B, S, S, 3)`` → float32 ``(B, 3, S, S)`` in [0, 1] (the exported models' input)."""
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[1:] != (size, size, 3) or crops.dtype != np.uint8:
        raise FommError(f"crops must be uint8 (B, {size}, {size}, 3), got {crops.dtype} {crops.shape}")
    images = np.empty((crops.shape[0], 3, size, size), dtype=np.float32)
    np.multiply(crops.transpose(0, 3, 1, 2), np.float32(1 / 255), out=images, casting="unsafe")
    return images


def _run_in_chunks(run: Any, images: np.ndarray, fixed_batch: int | None) -> list[np.ndarray]:
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
    """A detector module (teacher ``KeypointDetector`` or ``StudentDetector``) run by PyTorch."""

    name = "torch"

    def __init__(self, module: torch.nn.Module, input_size: int, num_keypoints: int,
                 device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.module = module.to(self.device).eval()
        self.input_size = input_size
        self.num_keypoints = num_keypoints

    @torch.no_grad()
    def __call__(self, crops: np.ndarray) -> RawOutputs:
        images = torch.from_numpy(crops_to_images(crops, self.input_size)).to(self.device)
        out = self.module(images)
        return RawOutputs(*(t.float().cpu().numpy() for t in (out.keypoints, out.jacobians, out.covariances, out.scores)))


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_session(model: bytes | str | os.PathLike, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool = False) -> Any:
    """An ONNX Runtime inference session (full graph optimisation, ``threads`` intra-op threads).

    Idle worker threads sleep instead of spin-waiting unless ``spin``: the video decoder runs in
    the same process, and on a shared 2-core machine spinning halved the student's throughput
    (743 vs 1,166 frames/s, 2 threads, scripts/benchmark_deploy.py's network).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise FommError("the onnx backend needs onnxruntime: pip install 'fomm_kp[deploy]'") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    providers = providers or ["CPUExecutionProvider"]
    missing = [p for p in providers if p not in ort.get_available_providers()]
    if missing:
        raise FommError(f"ONNX Runtime has no {missing[0]} here (available: {', '.join(ort.get_available_providers())})")
    source = str(model) if isinstance(model, (str, os.PathLike)) else bytes(model)
    if isinstance(model, (str, os.PathLike)) and not Path(model).is_file():
        raise FommError(f"ONNX file not found: {model}")
    try:
        return ort.InferenceSession(source, options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise FommError(f"ONNX Runtime cannot load the model: {str(exc).splitlines()[0]}") from None


class OnnxBackend:
    """An exported detector (see :mod:`fomm_kp.export`) run by ONNX Runtime (CPU by default)."""

    name = "onnx"

    def __init__(self, model: bytes | str | os.PathLike, threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        from fomm_kp.deploy.export import INPUT_NAME, OUTPUT_NAMES

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
        images = crops_to_images(crops, self.input_size)
        outputs = _run_in_chunks(lambda x: self.session.run(self.output_names, {self.input_name: x}),
                                 images, self.fixed_batch)
        return RawOutputs(*(np.asarray(o, dtype=np.float32) for o in outputs))


class TensorRTBackend:
    """A serialised TensorRT engine (built by ``fomm-kp export --tensorrt`` or ``trtexec``), with
    input and output buffers held as CUDA tensors of torch. Needs TensorRT >= 8.5 (name-based I/O)."""

    name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike) -> None:
        from fomm_kp.deploy.export import INPUT_NAME, OUTPUT_NAMES, require_tensorrt

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
        outputs = _run_in_chunks(self._run, crops_to_images(crops, self.input_size), self.fixed_batch)
        return RawOutputs(*outputs)


class DetectorModel:
    """A detector behind a :class:`Backend`, with the tracking surface of :class:`fomm_kp.inference.Model`."""

    def __init__(self, backend: Backend, config: Config, meta: dict[str, Any], kind: str) -> None:
        self.backend = backend
        self.config = config
        self.meta = dict(meta)
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
        return _to_pixels(*(torch.from_numpy(a) for a in (out.keypoints, out.scores, out.jacobians, out.covariances)),
                          np.asarray(boxes, dtype=np.float64))


def resolve_backend(backend: str, kind: str, device: str | torch.device | None = None) -> str:
    """The backend ``auto`` stands for: ONNX Runtime for students on the CPU (when onnxruntime is
    installed), PyTorch otherwise. Other names are checked and returned."""
    if backend not in BACKENDS:
        raise FommError(f"backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    if backend != "auto":
        return backend
    if device is None or device == "auto":
        on_cpu = not torch.cuda.is_available()
    else:
        on_cpu = torch.device(device).type == "cpu"
    if kind == "student" and on_cpu and onnxruntime_available():
        chosen = "onnx"
    else:
        chosen = "torch"
    log.info("backend auto -> %s (%s detector%s)", chosen, kind, ", CPU" if on_cpu else "")
    return chosen


def load_for_tracking(
    source: str | os.PathLike,
    backend: str = "auto",
    engine: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    threads: int | None = None,
) -> Model | DetectorModel:
    """Load a detector for :func:`fomm_kp.api.track` on the chosen backend.

    Args:
        source: a teacher or student checkpoint (``.pt``), or an ``.onnx`` file exported by
            :mod:`fomm_kp.export` (it carries the config and tracking metadata).
        backend: ``torch``, ``onnx``, ``tensorrt`` or ``auto`` (see :func:`resolve_backend`).
        engine: for ``onnx``, an exported ``.onnx`` file to run instead of exporting the checkpoint
            in memory; for ``tensorrt``, the serialised engine (required).
        device: torch device for the ``torch`` backend; ``cuda`` selects ONNX Runtime's CUDA provider.
        threads: ONNX Runtime intra-op threads (default: ONNX Runtime's choice).

    A teacher on the ``torch`` backend loads as a full :class:`~fomm_kp.inference.Model`.
    """
    from fomm_kp.deploy.export import export_onnx, load_detector, read_onnx_metadata

    source = Path(source)
    if not source.is_file():
        raise FommError(f"model file not found: {source}")
    if source.suffix.lower() == ".onnx":
        import onnx

        kind, config, meta, _ = read_onnx_metadata(onnx.load(str(source), load_external_data=False))
        chosen = "onnx" if backend == "auto" else resolve_backend(backend, kind, device)
        if chosen == "torch":
            raise FommError("an .onnx file runs on the onnx or tensorrt backend; give the checkpoint for torch")
        if chosen == "tensorrt":
            if engine is None:
                raise FommError("the tensorrt backend needs --engine MODEL.engine")
            runtime: Backend = TensorRTBackend(engine)
        else:
            runtime = OnnxBackend(engine or source, threads, _onnx_providers(device))
        return _checked(DetectorModel(runtime, config, meta, kind), None)

    from fomm_kp.checkpoint import read_checkpoint

    _, _, _, meta = read_checkpoint(source)
    kind = meta.get("kind", "teacher")
    chosen = resolve_backend(backend, kind, device)
    if chosen == "torch":
        if engine is not None:
            raise FommError("--engine is for the onnx and tensorrt backends")
        if kind == "teacher":
            return Model.load(source, device)
        detector = load_detector(source)
        runtime = TorchBackend(detector.module, detector.input_size, detector.num_keypoints, choose_device(device))
        return DetectorModel(runtime, detector.config, detector.meta, kind)
    detector = load_detector(source)
    if chosen == "tensorrt":
        if engine is None:
            raise FommError("the tensorrt backend needs --engine MODEL.engine (fomm-kp export --tensorrt, "
                            "or scripts/jetson_build_engine.sh on the Jetson)")
        runtime = TensorRTBackend(engine)
    elif engine is not None:
        runtime = OnnxBackend(engine, threads, _onnx_providers(device))
    else:
        runtime = OnnxBackend(export_onnx(detector), threads, _onnx_providers(device))
    return _checked(DetectorModel(runtime, detector.config, detector.meta, kind), detector)


def _onnx_providers(device: str | torch.device | None) -> list[str]:
    if device not in (None, "auto") and torch.device(device).type == "cuda":
        return ["CUDAExecutionProvider"]
    return ["CPUExecutionProvider"]


def _checked(model: DetectorModel, detector: Any) -> DetectorModel:
    """An engine file must belong to the checkpoint it is given with (input size and keypoints)."""
    if detector is not None and (model.detector_size != detector.input_size or model.num_keypoints != detector.num_keypoints):
        raise FommError(
            f"the {model.backend.name} model takes {model.detector_size} px and gives {model.num_keypoints} keypoints, "
            f"but {detector.source} has {detector.input_size} px and {detector.num_keypoints}: not exported from it"
        )
    log.info("%r", model)
    return model
