"""The exported detector graph: what ``fomm-kp export`` writes and the onnx backend runs.

The graph is the whole detector: ``images`` float32 ``(B, 3, S, S)`` RGB in [0, 1] (NCHW, ``S`` =
the detector's input size; resize outside) → ``keypoints`` ``(B, K, 2)``, ``jacobians`` ``(B, K, 2,
2)``, ``covariances`` ``(B, K, 2, 2)``, ``scores`` ``(B, K)``, in the normalised crop coordinates of
:class:`~fomm_kp.models.KeypointOutput`. Float input rather than uint8 because TensorRT 8.5
(JetPack 5) has no UINT8 network inputs. The model's config and tracking metadata travel in the
file's ``metadata_props``, so that an ``.onnx`` file alone can drive :func:`fomm_kp.track`.

Export blockers designed out: ``torch.inverse`` (no ONNX op; the detector has none, geometry uses a
closed-form 2×2 inverse), the detector's internal ``F.interpolate(antialias=...)`` (export runs at
exactly the input size, so it is a no-op), ``Einsum`` (the head is re-expressed with ``MatMul``,
:func:`fomm_kp.models.student.heatmap_head_outputs`), training-mode batch norm (the exported module
is put in eval mode and checked), opsets above TensorRT 8.5's 17. The checks against TensorRT's
limits live in :mod:`fomm_kp.deploy.onnx_checks`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from fomm_kp.config import Config, from_dict, to_dict
from fomm_kp.crops import CropSettings
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.models import KeypointNetwork
from fomm_kp.models.student import StudentDetector, heatmap_head_outputs
from fomm_kp.optional import available, require
from fomm_kp.runtime.networks import LoadedDetector

__all__ = [
    "INPUT_NAME", "OUTPUT_NAMES", "DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET", "DetectorGraph", "OnnxInfo", "onnx_metadata",
    "export_onnx", "read_onnx_metadata", "load_onnx", "onnxruntime_available", "onnx_session",
]

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAMES = ("keypoints", "jacobians", "covariances", "scores")
DEFAULT_OPSET = 17
MIN_OPSET = 13  # Softmax/LogSoftmax over one axis, Squeeze/Unsqueeze axes as inputs
MAX_OPSET = 20  # the highest opset torch's TorchScript exporter writes
METADATA_KEYS = ("fomm_kp.kind", "fomm_kp.config", "fomm_kp.meta", "fomm_kp.input")


class DetectorGraph(nn.Module):
    """What is exported: ``images (B, 3, S, S)`` → ``(keypoints, jacobians, covariances, scores)``.

    For the teacher the hourglass and heads are reused and the heatmap statistics recomputed with
    export-friendly operations (no ``Einsum``); numerically the same as the teacher's ``forward``
    (checked by :func:`compare_onnx` and the tests).
    """

    def __init__(self, detector: KeypointNetwork) -> None:
        super().__init__()
        if not isinstance(detector, nn.Module) or not hasattr(detector, "config"):
            raise FommError(f"cannot export a {type(detector).__name__}: expected a KeypointDetector or StudentDetector")
        self.detector = detector
        self.input_size = detector.config.input_size

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        d = self.detector
        if isinstance(d, StudentDetector):
            out = d(images)
        else:
            features = d.hourglass(images)
            logits = d.heatmap_head(features)
            raw = d.jacobian_head(features) if d.jacobian_head is not None else None
            out = heatmap_head_outputs(logits, raw, d.config.temperature, 1)
        return out.keypoints, out.jacobians, out.covariances, out.scores


def onnx_metadata(detector: LoadedDetector) -> dict[str, str]:
    """The ``metadata_props`` written into exported files (config and tracking metadata as JSON)."""
    return {
        "fomm_kp.kind": detector.kind,
        "fomm_kp.config": json.dumps(to_dict(detector.config)),
        "fomm_kp.meta": json.dumps(detector.meta),
        "fomm_kp.input": f"float32 NCHW RGB in [0,1], side {detector.input_size}",
    }


def _export_bytes(module: KeypointNetwork, input_size: int, opset: int, dynamic_batch: bool, batch_size: int) -> bytes:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise FommError(f"opset must be an integer in [{MIN_OPSET}, {MAX_OPSET}], got {opset}")
    graph = DetectorGraph(module).cpu().eval()  # never export training-mode batch norm
    if any(m.training for m in graph.modules()):
        raise FommError("internal error: a module is still in training mode")
    example = torch.rand(batch_size, 3, input_size, input_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is the one that needs no onnxscript; its tracer warnings concern
        # shape checks that are constant at the export size.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        torch.onnx.export(
            graph, (example,), buffer, dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)} if dynamic_batch else None,
            do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL,
        )
    return buffer.getvalue()


def export_onnx(
    detector: LoadedDetector,
    path: str | os.PathLike | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    batch_size: int = 1,
) -> bytes:
    """Export ``detector`` to ONNX; returns the serialised model and writes it to ``path`` when given.

    ``dynamic_batch`` makes the batch axis symbolic (``batch``); otherwise it is fixed to
    ``batch_size``. The file is checked by the ONNX checker before it is written.
    """
    onnx = require("onnx", "exporting to ONNX")
    if batch_size < 1:
        raise FommError(f"batch size must be at least 1, got {batch_size}")
    data = _export_bytes(detector.network, detector.input_size, opset, dynamic_batch, batch_size)
    model = onnx.load_from_string(data)
    for key, value in onnx_metadata(detector).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "fomm_kp"
    k = detector.num_keypoints
    trailing = {"keypoints": (k, 2), "jacobians": (k, 2, 2), "covariances": (k, 2, 2), "scores": (k,)}
    for value in model.graph.output:  # declare the fixed output dimensions (the exporter leaves names)
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(list(dims)[1:], trailing[value.name]):
            dim.ClearField("dim_param")
            dim.dim_value = size
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise FommError(f"the exported ONNX graph fails the ONNX checker: {str(exc).splitlines()[0]}") from None
    data = model.SerializeToString()
    if path is not None:
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
        log.info("wrote %s (%.1f MB, opset %d, %s batch)", path, len(data) / 1e6, opset,
                 "dynamic" if dynamic_batch else f"static {batch_size}")
    return data


class OnnxInfo(NamedTuple):
    """What an exported file says about its detector."""

    kind: str
    config: Config
    meta: dict[str, Any]
    input_size: int

    @property
    def crop(self) -> CropSettings:
        return CropSettings.from_meta(self.meta)


def read_onnx_metadata(model: Any, source: object = "this ONNX file") -> OnnxInfo:
    """:class:`OnnxInfo` from an exported model's ``metadata_props`` (parsed as JSON data, nothing run).

    The graph must be the detector graph fomm_kp exports: one square float input named
    :data:`INPUT_NAME` and the outputs :data:`OUTPUT_NAMES`; anything else is a :class:`FommError`
    naming ``source``."""
    props = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in METADATA_KEYS if k not in props]
    if missing:
        raise FommError(f"{source} was not exported by fomm_kp (no {missing[0]} metadata): "
                        "pass the checkpoint it came from as well")
    try:
        config = from_dict(json.loads(props["fomm_kp.config"]), source=f"{source} (config)")
        meta = json.loads(props["fomm_kp.meta"])
    except json.JSONDecodeError as exc:
        raise FommError(f"{source}: its fomm_kp metadata is not JSON ({exc.msg})") from None
    if not isinstance(meta, dict) or props["fomm_kp.kind"] not in ("teacher", "student"):
        raise FommError(f"{source}: bad fomm_kp metadata (kind {props['fomm_kp.kind']!r}, meta {type(meta).__name__})")
    inputs, outputs = list(model.graph.input), [o.name for o in model.graph.output]
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim] if len(inputs) == 1 else []
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME or len(dims) != 4 or dims[1] != 3 or dims[2] < 8 \
            or dims[2] != dims[3] or outputs != list(OUTPUT_NAMES):
        raise FommError(f"{source} is not a detector graph exported by fomm_kp (inputs "
                        f"{[i.name for i in inputs]}, outputs {outputs})")
    info = OnnxInfo(props["fomm_kp.kind"], config, meta, int(dims[2]))
    try:
        info.crop
    except FommError as exc:
        raise FommError(f"{source}: {exc}") from None
    return info


def load_onnx(path: str | os.PathLike) -> Any:
    """The ``onnx.ModelProto`` of a file (graph and metadata; external weights are not read)."""
    onnx = require("onnx", "reading ONNX files")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises protobuf's own error types for a file that is not ONNX
        raise FommError(f"{path} is not an ONNX model ({exc.__class__.__name__})") from None


def onnxruntime_available() -> bool:
    return available("onnxruntime")


def onnx_session(model: bytes | str | os.PathLike, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool = False) -> Any:
    """An ONNX Runtime inference session (full graph optimisation, ``threads`` intra-op threads).

    Idle worker threads sleep instead of spin-waiting unless ``spin``: the video decoder runs in
    the same process, and on a shared 2-core machine spinning halved the student's throughput
    (743 vs 1,166 frames/s, 2 threads, scripts/benchmark_deploy.py's network).
    """
    ort = require("onnxruntime", "running ONNX models")
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
