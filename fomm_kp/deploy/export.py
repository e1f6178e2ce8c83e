"""``fomm-kp export``: a teacher or student detector to ONNX, checked, compared with PyTorch, and
optionally built into a TensorRT engine.

The graph and its metadata are :mod:`fomm_kp.runtime.onnx_graph` (the onnx backend exports in memory
with the same code); the checks :mod:`fomm_kp.deploy.onnx_checks`; engines :mod:`fomm_kp.deploy.tensorrt`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fomm_kp.deploy.onnx_checks import OnnxCheck, check_onnx, compare_onnx
from fomm_kp.deploy.tensorrt import EngineOptions, export_tensorrt, tensorrt_profile
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.progress import Progress, report
from fomm_kp.runtime.backends import require_tensorrt
from fomm_kp.runtime.networks import load_detector
from fomm_kp.runtime.onnx_graph import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, export_onnx

__all__ = ["OnnxOptions", "ExportReport", "export"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxOptions:
    """How the ONNX graph is exported and what agreement with PyTorch it must reach.

    Attributes:
        opset: ONNX opset (TensorRT 8.5 / JetPack 5 parses up to 17).
        dynamic_batch: a symbolic batch axis; otherwise the batch is fixed to ``batch_size``.
        batch_size: the static batch size.
        tolerance: largest accepted |PyTorch − ONNX Runtime| of any output.
    """

    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = True
    batch_size: int = 1
    tolerance: float = 1e-4

    def __post_init__(self) -> None:
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise FommError(f"opset must be an integer in [{MIN_OPSET}, {MAX_OPSET}], got {self.opset}")
        if self.batch_size < 1:
            raise FommError(f"batch size must be at least 1, got {self.batch_size}")
        if not np.isfinite(self.tolerance) or self.tolerance <= 0:
            raise FommError(f"tolerance must be a positive number, got {self.tolerance}")


@dataclass
class ExportReport:
    """What :func:`export` did: files written, checks and the PyTorch–ONNX Runtime comparison."""

    onnx_path: Path
    kind: str
    input_size: int
    num_keypoints: int
    dynamic_batch: bool
    check: OnnxCheck
    max_abs_difference: dict[str, float]
    engine_path: Path | None = None
    precision: str | None = None

    def format(self) -> str:
        batch = "dynamic batch" if self.dynamic_batch else "static batch"
        lines = [f"{self.kind} detector -> {self.onnx_path} ({batch}; input float32 (B, 3, {self.input_size}, "
                 f"{self.input_size}) RGB in [0, 1]; {self.num_keypoints} keypoints)", self.check.format()]
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs_difference.items())
        lines.append(f"PyTorch vs ONNX Runtime (CPU), max |difference|: {diffs}")
        if self.engine_path is not None:
            lines.append(f"TensorRT engine ({self.precision}) -> {self.engine_path}")
        return "\n".join(lines)


def export(
    checkpoint: str | os.PathLike,
    onnx_path: str | os.PathLike,
    tensorrt_path: str | os.PathLike | None = None,
    onnx: OnnxOptions = OnnxOptions(),
    engine: EngineOptions = EngineOptions(),
    progress: Progress | None = None,
) -> ExportReport:
    """Export a teacher or student checkpoint to ONNX, check it, compare it with PyTorch, and build
    a TensorRT engine when ``tensorrt_path`` is given (TensorRT must be importable).

    Files are written only when everything passed: a failing check, a comparison above
    ``onnx.tolerance``, a missing TensorRT (checked first) or a failed engine build raises
    :class:`FommError` and writes nothing. INT8 calibration frames come from ``engine.video``
    (default: the video the model was trained on), cropped and resized as for tracking.
    """
    def say(step: int, text: str) -> None:
        log.info(text)
        report(progress, step, 3 if tensorrt_path is not None else 2, text)

    if tensorrt_path is not None:
        require_tensorrt()
    detector = load_detector(checkpoint)
    say(0, f"exporting the {detector.kind} detector of {checkpoint} (opset {onnx.opset})")
    data = export_onnx(detector, None, onnx.opset, onnx.dynamic_batch, onnx.batch_size)
    check = check_onnx(data)
    say(1, "comparing PyTorch with ONNX Runtime")
    diffs = compare_onnx(detector, data)
    result = ExportReport(Path(onnx_path), detector.kind, detector.input_size, detector.num_keypoints,
                          onnx.dynamic_batch, check, diffs)
    log.info("%s", result.format())
    if check.checker_error is not None:
        raise FommError(f"the exported graph fails the ONNX checker: {check.checker_error}")
    worst = max(diffs.values())
    if not np.isfinite(worst) or worst > onnx.tolerance:
        raise FommError(f"ONNX Runtime and PyTorch differ by {worst:.2e} (> {onnx.tolerance:g}): nothing written")
    if tensorrt_path is not None:
        if check.tensorrt_errors:
            raise FommError(f"the exported graph exceeds TensorRT 8.5's limits: {check.tensorrt_errors[0]}")
        say(2, f"building the TensorRT engine ({engine.precision})")
        export_tensorrt(detector, data, tensorrt_path, engine,
                        tensorrt_profile(onnx.dynamic_batch, onnx.batch_size, engine.max_batch))
        result.engine_path, result.precision = Path(tensorrt_path), engine.precision
    try:
        atomic_write(onnx_path, lambda tmp: Path(tmp).write_bytes(data))
    except BaseException:
        if tensorrt_path is not None and Path(tensorrt_path).exists():
            os.remove(tensorrt_path)  # the engine was written by this call: all or nothing
        raise
    return result
