"""TensorRT engines from an exported graph, with TensorRT's Python API (when it imports here).

``fomm-kp export --tensorrt FILE --fp16|--int8`` builds an engine; INT8 is calibrated with an
entropy calibrator on crops of the training video taken as tracking takes them. Without TensorRT
(no NVIDIA GPU, or a development machine), engines are built on the target with
``scripts/jetson_build_engine.sh`` (trtexec) instead, and :func:`fomm_kp.runtime.backends.require_tensorrt`
says so in one line.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from fomm_kp.deploy.samples import tracking_crops
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.runtime.backends import require_tensorrt
from fomm_kp.runtime.networks import LoadedDetector, load_detector

__all__ = ["PRECISIONS", "EngineOptions", "build_tensorrt_engine", "tensorrt_profile", "export_tensorrt"]

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class EngineOptions:
    """How a TensorRT engine is built.

    Attributes:
        precision: ``fp32``, ``fp16`` (default) or ``int8``.
        video: INT8 calibration video (default: the one the model was trained on).
        calibration_frames: frames of it used for INT8 calibration.
        max_batch: largest batch of the optimisation profile of a dynamic-batch model.
    """

    precision: Literal["fp32", "fp16", "int8"] = "fp16"
    video: str | os.PathLike | None = None
    calibration_frames: int = 512
    max_batch: int = 64

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise FommError(f"precision must be fp32, fp16 or int8, got '{self.precision}'")
        if self.calibration_frames < 1 or self.max_batch < 1:
            raise FommError("calibration_frames and max_batch must be at least 1")


def build_tensorrt_engine(
    onnx_model: bytes | str | os.PathLike,
    engine_path: str | os.PathLike,
    precision: Literal["fp32", "fp16", "int8"] = "fp16",
    calibration_images: np.ndarray | None = None,
    batch_sizes: tuple[int, int, int] = (1, 16, 64),
    workspace_mb: int = 1024,
    calibration_cache: str | os.PathLike | None = None,
) -> Path:
    """Build a serialised TensorRT engine from an exported ONNX model with TensorRT's Python API.

    ``batch_sizes`` = (min, optimal, max) of the optimisation profile for a dynamic-batch model.
    ``int8`` needs ``calibration_images`` float32 ``(N, 3, S, S)`` in [0, 1] (frames of the video,
    cropped as for tracking), fed to an entropy calibrator through CUDA tensors of torch. Raises
    :class:`FommError` with a clear message when TensorRT is not importable.
    """
    trt = require_tensorrt()
    data = Path(onnx_model).read_bytes() if isinstance(onnx_model, (str, os.PathLike)) else bytes(onnx_model)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT < 10 needs it
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data):
        problems = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise FommError(f"TensorRT could not parse the ONNX model: {problems}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    tensor = network.get_input(0)
    side = tensor.shape[2]
    profile = None
    if tensor.shape[0] == -1:
        low, opt, high = batch_sizes
        profile = builder.create_optimization_profile()
        profile.set_shape(tensor.name, (low, 3, side, side), (opt, 3, side, side), (high, 3, side, side))
        config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast FP16; TensorRT may keep FP32 kernels")
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if calibration_images is None or len(calibration_images) == 0:
            raise FommError("INT8 needs calibration frames: pass the video (--video) the model was trained on")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _make_calibrator(trt, np.asarray(calibration_images, dtype=np.float32),
                                                  batch_sizes[1], calibration_cache)
        if profile is not None:
            config.set_calibration_profile(profile)
    elif precision != "fp32":
        raise FommError(f"precision must be fp32, fp16 or int8, got '{precision}'")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise FommError("TensorRT failed to build the engine (see its log above)")
    return atomic_write(engine_path, lambda tmp: Path(tmp).write_bytes(bytes(serialized)))


def _make_calibrator(trt: Any, images: np.ndarray, batch_size: int, cache: str | os.PathLike | None) -> Any:
    """An ``IInt8EntropyCalibrator2`` over ``images`` (N, 3, S, S), device memory from torch."""
    if not torch.cuda.is_available():
        raise FommError("INT8 calibration needs CUDA through torch (torch.cuda.is_available() is False)")

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.images = images
            self.batch = min(batch_size, len(images))
            self.position = 0
            self.buffer = torch.empty((self.batch, *images.shape[1:]), dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return self.batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.position + self.batch > len(self.images):
                return None
            chunk = self.images[self.position:self.position + self.batch]
            self.buffer.copy_(torch.from_numpy(chunk))
            self.position += self.batch
            return [int(self.buffer.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            if cache is not None and Path(cache).is_file():
                return Path(cache).read_bytes()
            return None

        def write_calibration_cache(self, data: Any) -> None:
            if cache is not None:
                atomic_write(cache, lambda tmp: Path(tmp).write_bytes(bytes(data)))

    return _Calibrator()


def tensorrt_profile(dynamic_batch: bool, batch_size: int, max_batch: int) -> tuple[int, int, int]:
    low = 1 if dynamic_batch else batch_size
    high = max_batch if dynamic_batch else batch_size
    return low, min(high, max(low, 16)), high


def export_tensorrt(
    detector: LoadedDetector | str | os.PathLike,
    onnx_model: bytes | str | os.PathLike,
    engine_path: str | os.PathLike,
    options: EngineOptions = EngineOptions(),
    batch_sizes: tuple[int, int, int] = (1, 16, 64),
) -> Path:
    """Build a TensorRT engine from an exported model; INT8 calibration frames are crops of
    ``options.video`` (default: the training video) taken as tracking takes them. Fails with a clear
    message, before any work, when TensorRT is not importable."""
    require_tensorrt()
    if not isinstance(detector, LoadedDetector):
        detector = load_detector(detector)
    calibration = None
    if options.precision == "int8":
        source = options.video if options.video is not None else detector.meta.get("video")
        if not source:
            raise FommError("INT8 calibration needs frames: pass --video")
        crops = tracking_crops(source, detector.crop, detector.config.data, detector.input_size,
                               max_frames=options.calibration_frames).crops
        calibration = crops.transpose(0, 3, 1, 2).astype(np.float32) / 255
    return build_tensorrt_engine(onnx_model, engine_path, options.precision, calibration, batch_sizes)
