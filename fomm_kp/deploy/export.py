"""Export a teacher or student detector to ONNX, check it against TensorRT's limits, build engines.

The exported graph is the whole detector: ``images`` float32 ``(B, 3, S, S)`` RGB in [0, 1]
(NCHW, ``S`` = the detector's input size; resize outside) → ``keypoints`` ``(B, K, 2)``,
``jacobians`` ``(B, K, 2, 2)``, ``covariances`` ``(B, K, 2, 2)``, ``scores`` ``(B, K)``, in the
normalised crop coordinates of :class:`~fomm_kp.models.keypoint_detector.KeypointOutput`. Float input
rather than uint8 because TensorRT 8.5 (JetPack 5) has no UINT8 network inputs. The model's config
and tracking metadata travel in the ONNX file's ``metadata_props`` so that an ``.onnx`` file alone
can drive :func:`fomm_kp.api.track`.

Export blockers designed out: ``torch.inverse`` (no ONNX op; the detector has none, geometry uses a
closed-form 2×2 inverse), the detector's internal ``F.interpolate(antialias=...)`` (export runs at
exactly the input size, so it is a no-op), ``Einsum`` (the head is re-expressed with ``MatMul``,
:func:`fomm_kp.models.student.heatmap_head_outputs`), training-mode batch norm (the exported module
is put in eval mode and checked), opsets above TensorRT 8.5's 17.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
from torch import nn

from fomm_kp.checkpoint import read_checkpoint
from fomm_kp.config import Config, from_dict, to_dict
from fomm_kp.errors import FommError
from fomm_kp.models.keypoint_detector import KeypointDetector
from fomm_kp.models.student import StudentDetector, heatmap_head_outputs, student_config_from_dict
from fomm_kp.files import atomic_write

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "TENSORRT_MAX_OPSET",
    "TENSORRT_SUPPORTED_OPS",
    "LoadedDetector",
    "DetectorGraph",
    "OnnxCheck",
    "ExportReport",
    "load_detector",
    "export_onnx",
    "onnx_metadata",
    "check_onnx",
    "compare_onnx",
    "tensorrt_available",
    "require_tensorrt",
    "build_tensorrt_engine",
    "export_tensorrt",
    "export",
]

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAMES = ("keypoints", "jacobians", "covariances", "scores")
DEFAULT_OPSET = 17
MIN_OPSET = 13  # Softmax/LogSoftmax over one axis, Squeeze/Unsqueeze axes as inputs
TENSORRT_MAX_OPSET = 17  # TensorRT 8.5 (JetPack 5) parses ONNX opsets up to 17
METADATA_KEYS = ("fomm_kp.kind", "fomm_kp.config", "fomm_kp.meta", "fomm_kp.input")

# ONNX operators of the default domain that TensorRT 8.5's ONNX parser supports ("Y" in
# onnx-tensorrt's docs/operators.md for 8.5). Anything else, and any custom domain, fails to parse.
TENSORRT_SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather
GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual
GridSample GRU HardSwish HardSigmoid Identity If ImageScaler InstanceNormalization IsNaN LeakyRelu
Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN
RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin
Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh
ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())
# Supported, but known to break or slow down TensorRT conversions of motion models in practice
# (TPSMM's scatter ops): reported as warnings.
TENSORRT_RISKY_OPS = {
    "ScatterND": "scatter ops broke TensorRT conversion of TPSMM; prefer gathers or arithmetic",
    "ScatterElements": "scatter ops broke TensorRT conversion of TPSMM; prefer gathers or arithmetic",
    "Scatter": "scatter ops broke TensorRT conversion of TPSMM; prefer gathers or arithmetic",
    "Einsum": "TensorRT supports Einsum without ellipsis, diagonals or broadcasting only; prefer MatMul",
    "NonZero": "data-dependent output shape",
    "Loop": "control flow: slow and fragile in TensorRT",
    "If": "control flow: both branches must have broadcastable shapes",
}
RESIZE_TRANSFORMS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
TENSORRT_IO_TYPES = {"FLOAT", "FLOAT16", "INT8", "INT32", "BOOL"}


# ----------------------------------------------------------------------------------------------
# Loading a detector from a checkpoint


@dataclass(frozen=True)
class LoadedDetector:
    """A detector network in eval mode with the config and metadata of its checkpoint.

    ``config`` is the teacher's full :class:`~fomm_kp.config.Config` (its data/localisation settings
    drive tracking); ``meta`` the checkpoint metadata (``localized``, ``box_side``, …).
    """

    module: nn.Module
    config: Config
    meta: dict
    kind: Literal["teacher", "student"]
    input_size: int
    num_keypoints: int
    source: str


def load_detector(checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedDetector:
    """The detector of a teacher checkpoint (``fomm-kp train``) or of a student (``fomm-kp distill``)."""
    config, states, _, meta = read_checkpoint(checkpoint)
    kind = meta.get("kind", "teacher")
    if kind == "student":
        student_config = student_config_from_dict(meta.get("student_config", {}))
        module: nn.Module = StudentDetector(student_config)
        state, name = states.get("student"), "student"
        input_size, k = student_config.input_size, student_config.num_keypoints
    elif kind == "teacher":
        module = KeypointDetector(config.model.detector, config.model.num_channels)
        state, name = states.get("detector"), "detector"
        input_size, k = config.model.detector.input_size, config.model.detector.num_keypoints
    else:
        raise FommError(f"{checkpoint}: unknown checkpoint kind '{kind}'")
    if state is None:
        raise FommError(f"{checkpoint}: no '{name}' weights in this checkpoint")
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise FommError(f"{checkpoint}: {name} weights do not match the config they carry "
                        f"({str(exc).splitlines()[0]})") from None
    module = module.to(device).eval()
    return LoadedDetector(module, config, meta, kind, input_size, k, str(checkpoint))


class DetectorGraph(nn.Module):
    """What is exported: ``images (B, 3, S, S)`` → ``(keypoints, jacobians, covariances, scores)``.

    For the teacher the hourglass and heads are reused and the heatmap statistics recomputed with
    export-friendly operations (no ``Einsum``); numerically the same as the teacher's ``forward``
    (checked by :func:`compare_onnx` and the tests).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        if not isinstance(detector, (KeypointDetector, StudentDetector)):
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


# ----------------------------------------------------------------------------------------------
# ONNX export


def onnx_metadata(detector: LoadedDetector) -> dict[str, str]:
    """The ``metadata_props`` written into exported files (config and tracking metadata as JSON)."""
    return {
        "fomm_kp.kind": detector.kind,
        "fomm_kp.config": json.dumps(to_dict(detector.config)),
        "fomm_kp.meta": json.dumps(detector.meta),
        "fomm_kp.input": f"float32 NCHW RGB in [0,1], side {detector.input_size}",
    }


def _export_bytes(module: nn.Module, input_size: int, opset: int, dynamic_batch: bool, batch_size: int) -> bytes:
    if not MIN_OPSET <= opset:
        raise FommError(f"opset {opset} is too old: the detector needs opset >= {MIN_OPSET}")
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
    import onnx

    if batch_size < 1:
        raise FommError(f"batch size must be at least 1, got {batch_size}")
    data = _export_bytes(detector.module, detector.input_size, opset, dynamic_batch, batch_size)
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


def read_onnx_metadata(model: Any) -> tuple[str, Config, dict, int]:
    """``(kind, config, meta, input_size)`` from an exported file's ``metadata_props``."""
    props = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in METADATA_KEYS if k not in props]
    if missing:
        raise FommError(f"this ONNX file was not exported by fomm_kp (no {missing[0]} metadata): "
                        "pass the checkpoint it came from as well")
    config = from_dict(json.loads(props["fomm_kp.config"]), source="ONNX metadata")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return props["fomm_kp.kind"], config, json.loads(props["fomm_kp.meta"]), int(dims[2].dim_value)


# ----------------------------------------------------------------------------------------------
# Checks: ONNX checker, TensorRT 8.5 operator and opset limits


@dataclass
class OnnxCheck:
    """Result of :func:`check_onnx`: the checker verdict and what would stop TensorRT 8.5."""

    opset: int
    op_counts: dict[str, int]
    checker_error: str | None
    tensorrt_errors: list[str] = field(default_factory=list)
    tensorrt_warnings: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.checker_error is None and not self.tensorrt_errors

    def format(self) -> str:
        lines = [f"ONNX opset {self.opset}; {sum(self.op_counts.values())} nodes: "
                 + ", ".join(f"{op}×{n}" for op, n in sorted(self.op_counts.items(), key=lambda t: -t[1]))]
        lines.append(f"inputs: {'; '.join(self.inputs)}")
        lines.append(f"outputs: {'; '.join(self.outputs)}")
        lines.append("ONNX checker: " + ("passed" if self.checker_error is None else f"FAILED: {self.checker_error}"))
        if self.tensorrt_errors:
            lines.append(f"TensorRT 8.5 (JetPack 5) limits: {len(self.tensorrt_errors)} problem(s)")
            lines += [f"  - {e}" for e in self.tensorrt_errors]
        else:
            lines.append(f"TensorRT 8.5 (JetPack 5) limits: passed (opset <= {TENSORRT_MAX_OPSET}, every operator supported)")
        lines += [f"  warning: {w}" for w in self.tensorrt_warnings]
        return "\n".join(lines)


_ONNX_TYPE_NAMES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 5: "INT16", 6: "INT32", 7: "INT64", 9: "BOOL",
                    10: "FLOAT16", 11: "DOUBLE", 16: "BFLOAT16"}


def _value_info_text(value: Any) -> tuple[str, str]:
    tensor = value.type.tensor_type
    dtype = _ONNX_TYPE_NAMES.get(tensor.elem_type, f"type{tensor.elem_type}")
    dims = [d.dim_param or str(d.dim_value) for d in tensor.shape.dim]
    return dtype, f"{value.name} {dtype} ({', '.join(dims)})"


def check_onnx(model: Any) -> OnnxCheck:
    """Check an ONNX model (path, bytes or ``onnx.ModelProto``): the ONNX checker (with shape
    inference), the opset against TensorRT 8.5's limit of 17, every operator against TensorRT 8.5's
    supported list and its restrictions, and the input/output types TensorRT accepts."""
    import onnx

    if isinstance(model, (str, os.PathLike)):
        if not Path(model).is_file():
            raise FommError(f"ONNX file not found: {model}")
        model = onnx.load(str(model))
    elif isinstance(model, (bytes, bytearray)):
        model = onnx.load_from_string(bytes(model))
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    try:
        onnx.checker.check_model(model, full_check=True)
        checker_error = None
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        checker_error = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    nodes = list(model.graph.node)
    counts = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in nodes)
    errors: list[str] = []
    warn: list[str] = []
    if opset > TENSORRT_MAX_OPSET:
        errors.append(f"opset {opset} is above {TENSORRT_MAX_OPSET}, the newest TensorRT 8.5 parses: export with --opset {TENSORRT_MAX_OPSET}")
    constants = {i.name for i in model.graph.initializer} | {o for n in nodes if n.op_type == "Constant" for o in n.output}
    for op in sorted(counts):
        node = next(n for n in nodes if (n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}") == op)
        if node.domain not in ("", "ai.onnx"):
            errors.append(f"{op} (custom domain '{node.domain}', node '{node.name}') has no TensorRT implementation without a plugin")
        elif op not in TENSORRT_SUPPORTED_OPS:
            errors.append(f"{op} (node '{node.name}', ×{counts[op]}) is not supported by TensorRT 8.5's ONNX parser")
        elif op in TENSORRT_RISKY_OPS:
            warn.append(f"{op} ×{counts[op]}: {TENSORRT_RISKY_OPS[op]}")
    for node in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Resize":
            if attrs.get("antialias", 0):
                errors.append(f"Resize '{node.name}' uses antialias (opset 18): export at the detector's input size")
            mode = attrs.get("mode", b"nearest").decode()
            if mode not in ("nearest", "linear"):
                errors.append(f"Resize '{node.name}' mode '{mode}' is not supported (nearest, linear only)")
            transform = attrs.get("coordinate_transformation_mode", b"half_pixel").decode()
            if transform not in RESIZE_TRANSFORMS:
                errors.append(f"Resize '{node.name}' coordinate transformation '{transform}' is not supported")
        elif node.op_type == "GridSample" and opset < 16:
            errors.append(f"GridSample '{node.name}' needs opset >= 16")
        elif node.op_type == "Einsum" and ("..." in attrs.get("equation", b"").decode() or len(node.input) > 2):
            errors.append(f"Einsum '{node.name}' ({attrs.get('equation', b'').decode()}): TensorRT 8.5 supports "
                          "two-operand equations without ellipsis only")
        elif node.op_type in ("Slice", "Squeeze", "Unsqueeze"):
            axes_index = 3 if node.op_type == "Slice" else 1
            if len(node.input) > axes_index and node.input[axes_index] and node.input[axes_index] not in constants:
                errors.append(f"{node.op_type} '{node.name}': TensorRT needs constant axes")
        elif node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1 and node.input[1] not in constants:
            errors.append(f"{node.op_type} '{node.name}': TensorRT needs its weights to be an initializer")
    inputs, outputs = [], []
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dtype, text = _value_info_text(value)
        inputs.append(text)
        if dtype not in TENSORRT_IO_TYPES:
            errors.append(f"input {value.name} is {dtype}: TensorRT 8.5 network inputs must be one of "
                          f"{', '.join(sorted(TENSORRT_IO_TYPES))}")
    for value in model.graph.output:
        dtype, text = _value_info_text(value)
        outputs.append(text)
        if dtype not in TENSORRT_IO_TYPES:
            errors.append(f"output {value.name} is {dtype}: TensorRT 8.5 network outputs must be one of "
                          f"{', '.join(sorted(TENSORRT_IO_TYPES))}")
    if any(t.data_type == 7 for t in model.graph.initializer):
        warn.append("INT64 initialisers: TensorRT casts them to INT32 (fine for shapes and indices)")
    return OnnxCheck(opset, dict(counts), checker_error, errors, warn, inputs, outputs)


def compare_onnx(
    detector: LoadedDetector, model: bytes | str | os.PathLike, images: np.ndarray | None = None,
    batch_sizes: Sequence[int] = (1, 4), seed: int = 0,
) -> dict[str, float]:
    """Largest absolute difference per output between the PyTorch detector (its own ``forward``)
    and ONNX Runtime (CPU) on ``images`` float32 ``(B, 3, S, S)`` in [0, 1], or on random images
    at each of ``batch_sizes`` (a static-batch model is run at its own batch size)."""
    from fomm_kp.runtime.backends import onnx_session

    session = onnx_session(model, threads=1)
    fixed = session.get_inputs()[0].shape[0]
    if images is None:
        rng = np.random.default_rng(seed)
        sizes = [fixed] if isinstance(fixed, int) else list(batch_sizes)
        batches = [rng.random((b, 3, detector.input_size, detector.input_size), dtype=np.float32) for b in sizes]
    else:
        batches = [np.asarray(images, dtype=np.float32)]
    worst = {name: 0.0 for name in OUTPUT_NAMES}
    module = detector.module.eval()
    device = next(module.parameters()).device
    for batch in batches:
        with torch.no_grad():
            out = module(torch.from_numpy(batch).to(device))
        reference = dict(zip(OUTPUT_NAMES, (out.keypoints, out.jacobians, out.covariances, out.scores)))
        results = session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        for name, value in zip(OUTPUT_NAMES, results):
            diff = np.abs(value - reference[name].float().cpu().numpy()).max()
            worst[name] = max(worst[name], float(diff))
    return worst


# ----------------------------------------------------------------------------------------------
# TensorRT


def tensorrt_available() -> tuple[bool, str]:
    """Whether TensorRT's Python package imports here, and its version or the import error."""
    try:
        import tensorrt as trt  # noqa: F401
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
    precision: Literal["fp32", "fp16", "int8"] = "fp16",
    video: str | os.PathLike | None = None,
    calibration_frames: int = 512,
    batch_sizes: tuple[int, int, int] = (1, 16, 64),
) -> Path:
    """Build a TensorRT engine from an exported model; INT8 calibration frames are crops of ``video``
    (default: the training video) taken as tracking takes them. Fails with a clear message, before
    any work, when TensorRT is not importable."""
    require_tensorrt()
    if not isinstance(detector, LoadedDetector):
        detector = load_detector(detector)
    calibration = None
    if precision == "int8":
        from fomm_kp.deploy.distill import tracking_crops

        source = video if video is not None else detector.meta.get("video")
        if not source:
            raise FommError("INT8 calibration needs frames: pass --video")
        crops = tracking_crops(source, detector.config, detector.meta, detector.input_size,
                               max_frames=calibration_frames).crops
        calibration = crops.transpose(0, 3, 1, 2).astype(np.float32) / 255
    return build_tensorrt_engine(onnx_model, engine_path, precision, calibration, batch_sizes)


# ----------------------------------------------------------------------------------------------
# The one call behind ``fomm-kp export``


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
    precision: Literal["fp32", "fp16", "int8"] = "fp16",
    dynamic_batch: bool = True,
    batch_size: int = 1,
    opset: int = DEFAULT_OPSET,
    video: str | os.PathLike | None = None,
    calibration_frames: int = 512,
    max_batch: int = 64,
    tolerance: float = 1e-4,
    progress: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export a teacher or student checkpoint to ONNX, check it, compare it with PyTorch, and build
    a TensorRT engine when ``tensorrt_path`` is given (TensorRT must be importable).

    The ONNX file is written first; a failing check or comparison above ``tolerance`` raises
    :class:`FommError` after the report is logged. INT8 calibration frames come from ``video``
    (default: the video the model was trained on), cropped and resized as for tracking.
    """
    def say(text: str) -> None:
        log.info(text)
        if progress is not None:
            progress(text)

    detector = load_detector(checkpoint)
    say(f"exporting the {detector.kind} detector of {checkpoint} (opset {opset})")
    data = export_onnx(detector, onnx_path, opset, dynamic_batch, batch_size)
    check = check_onnx(data)
    say("comparing PyTorch with ONNX Runtime")
    diffs = compare_onnx(detector, data)
    report = ExportReport(Path(onnx_path), detector.kind, detector.input_size, detector.num_keypoints,
                          dynamic_batch, check, diffs)
    log.info("%s", report.format())
    if check.checker_error is not None:
        raise FommError(f"{onnx_path} fails the ONNX checker: {check.checker_error}")
    worst = max(diffs.values())
    if not np.isfinite(worst) or worst > tolerance:
        raise FommError(f"ONNX Runtime and PyTorch differ by {worst:.2e} (> {tolerance:g}) on {onnx_path}")
    if tensorrt_path is not None:
        if check.tensorrt_errors:
            raise FommError(f"{onnx_path} exceeds TensorRT 8.5's limits: {check.tensorrt_errors[0]}")
        say(f"building the TensorRT engine ({precision})")
        export_tensorrt(detector, data, tensorrt_path, precision, video, calibration_frames,
                        tensorrt_profile(dynamic_batch, batch_size, max_batch))
        report.engine_path, report.precision = Path(tensorrt_path), precision
    return report
