"""Load a trained detector for tracking, on the backend that suits it: :func:`load_model`.

A teacher checkpoint (``fomm-kp train``) on PyTorch loads as a full
:class:`~fomm_kp.runtime.model.Model`; a student (``fomm-kp distill``), an exported ``.onnx`` file or
another backend gives a :class:`~fomm_kp.runtime.backends.DetectorModel`. Both are
:class:`~fomm_kp.runtime.detector.Detector`\\ s. The checkpoint is read once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from fomm_kp.checkpoint import Checkpoint, read_checkpoint
from fomm_kp.errors import FommError
from fomm_kp.optional import available, require
from fomm_kp.runtime.backends import Backend, DetectorModel, OnnxBackend, TensorRTBackend, TorchBackend
from fomm_kp.runtime.detector import Detector, choose_device, device_type
from fomm_kp.runtime.model import Model
from fomm_kp.runtime.networks import LoadedDetector, detector_network, load_detector
from fomm_kp.runtime.onnx_graph import export_onnx, load_onnx, onnxruntime_available, read_onnx_metadata

__all__ = ["BACKENDS", "resolve_backend", "require_backend", "load_model"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx", "tensorrt")


def resolve_backend(backend: str, kind: str, device: str | torch.device | None = None) -> str:
    """The backend ``auto`` stands for: ONNX Runtime for students on the CPU (when onnxruntime is
    installed), PyTorch otherwise. Other names are checked and returned."""
    if backend not in BACKENDS:
        raise FommError(f"backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    if backend != "auto":
        return backend
    on_cpu = device_type(device) == "cpu"
    chosen = "onnx" if kind == "student" and on_cpu and onnxruntime_available() and available("onnx") else "torch"
    log.info("backend auto -> %s (%s detector%s)", chosen, kind, ", CPU" if on_cpu else "")
    return chosen


def require_backend(backend: str, checkpoint: str | os.PathLike) -> None:
    """The optional packages the ``backend`` (or an ``.onnx`` model file) needs must be installed:
    one line naming the ``deploy`` extra otherwise, before any work."""
    if backend not in BACKENDS:
        raise FommError(f"backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    if backend == "onnx" or Path(checkpoint).suffix.lower() == ".onnx":
        for module in ("onnx", "onnxruntime"):
            require(module, "running an ONNX model")


def load_model(
    checkpoint: str | os.PathLike,
    device: str | torch.device | None = None,
    backend: str = "auto",
    engine: str | os.PathLike | None = None,
    threads: int | None = None,
) -> Detector:
    """Load a trained detector from a checkpoint (``weights_only`` loading) or an exported ``.onnx`` file.

    Args:
        checkpoint: a teacher (``fomm-kp train``) or student (``fomm-kp distill``) checkpoint, or an
            ``.onnx`` file exported by ``fomm-kp export`` (it carries the config and crop settings).
        device: torch device (default: CUDA when present); ``cuda`` selects ONNX Runtime's CUDA provider.
        backend: ``torch``, ``onnx``, ``tensorrt`` or ``auto`` (:func:`resolve_backend`).
        engine: for ``onnx``, an exported ``.onnx`` file to run instead of exporting the checkpoint
            in memory; for ``tensorrt``, the serialised engine (required).
        threads: ONNX Runtime intra-op threads (default: ONNX Runtime's choice).

    A teacher on the ``torch`` backend is a full :class:`~fomm_kp.runtime.model.Model`.
    """
    source = Path(checkpoint)
    if source.suffix.lower() == ".onnx":
        return _from_onnx_file(source, backend, engine, device, threads)
    loaded = read_checkpoint(source)
    chosen = resolve_backend(backend, loaded.kind, device)
    if chosen == "torch":
        return _on_torch(loaded, source, engine, device)
    detector = load_detector(loaded, source=source)
    if chosen == "tensorrt":
        if engine is None:
            raise FommError("the tensorrt backend needs --engine MODEL.engine (fomm-kp export --tensorrt, "
                            "or scripts/jetson_build_engine.sh on the Jetson)")
        runtime: Backend = TensorRTBackend(engine)
    else:
        runtime = OnnxBackend(export_onnx(detector) if engine is None else engine, threads, _onnx_providers(device))
    return _checked(DetectorModel(runtime, detector.config, detector.meta, detector.kind), detector)


def _on_torch(loaded: Checkpoint, source: Path, engine: str | os.PathLike | None,
              device: str | torch.device | None) -> Detector:
    if engine is not None:
        raise FommError("--engine is for the onnx and tensorrt backends")
    if loaded.kind == "teacher":
        return Model.from_checkpoint(loaded, source, device)
    runtime = TorchBackend(detector_network(loaded, source), choose_device(device))
    return DetectorModel(runtime, loaded.config, loaded.meta, loaded.kind)


def _from_onnx_file(source: Path, backend: str, engine: str | os.PathLike | None,
                    device: str | torch.device | None, threads: int | None) -> DetectorModel:
    if not source.is_file():
        raise FommError(f"model file not found: {source}")
    info = read_onnx_metadata(load_onnx(source), source)
    chosen = "onnx" if backend == "auto" else resolve_backend(backend, info.kind, device)
    if chosen == "torch":
        raise FommError("an .onnx file runs on the onnx or tensorrt backend; give the checkpoint for torch")
    if chosen == "tensorrt":
        if engine is None:
            raise FommError("the tensorrt backend needs --engine MODEL.engine")
        runtime: Backend = TensorRTBackend(engine)
    else:
        runtime = OnnxBackend(engine or source, threads, _onnx_providers(device))
    return _checked(DetectorModel(runtime, info.config, info.meta, info.kind), None)


def _onnx_providers(device: str | torch.device | None) -> list[str]:
    if device not in (None, "auto") and device_type(device) == "cuda":
        return ["CUDAExecutionProvider"]
    return ["CPUExecutionProvider"]


def _checked(model: DetectorModel, detector: LoadedDetector | None) -> DetectorModel:
    """An engine file must belong to the checkpoint it is given with (input size and keypoints)."""
    if detector is not None and (model.detector_size != detector.input_size or model.num_keypoints != detector.num_keypoints):
        raise FommError(
            f"the {model.backend.name} model takes {model.detector_size} px and gives {model.num_keypoints} keypoints, "
            f"but {detector.source} has {detector.input_size} px and {detector.num_keypoints}: not exported from it"
        )
    log.info("%r", model)
    return model
