"""Checks of an exported graph: the ONNX checker, TensorRT 8.5's operator table and limits, and
agreement with PyTorch.

The TensorRT check is static: every operator against the table of onnx-tensorrt's
``docs/operators.md`` for 8.5 (unsupported or custom-domain operators, opset > 17, antialiased
``Resize``, non-constant axes, UINT8/INT64 inputs); the operators known to break conversions of
motion models in practice are reported as warnings. To change a check, edit the tables below or
:func:`_node_problems`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from fomm_kp.errors import FommError
from fomm_kp.optional import require
from fomm_kp.runtime.networks import LoadedDetector
from fomm_kp.runtime.onnx_graph import INPUT_NAME, OUTPUT_NAMES, onnx_session

__all__ = ["TENSORRT_MAX_OPSET", "TENSORRT_SUPPORTED_OPS", "TENSORRT_RISKY_OPS", "OnnxCheck", "check_onnx", "compare_onnx"]

TENSORRT_MAX_OPSET = 17  # TensorRT 8.5 (JetPack 5) parses ONNX opsets up to 17

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

_ONNX_TYPE_NAMES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 5: "INT16", 6: "INT32", 7: "INT64", 9: "BOOL",
                    10: "FLOAT16", 11: "DOUBLE", 16: "BFLOAT16"}


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


def _value_info_text(value: Any) -> tuple[str, str]:
    tensor = value.type.tensor_type
    dtype = _ONNX_TYPE_NAMES.get(tensor.elem_type, f"type{tensor.elem_type}")
    dims = [d.dim_param or str(d.dim_value) for d in tensor.shape.dim]
    return dtype, f"{value.name} {dtype} ({', '.join(dims)})"


def _as_model(onnx: Any, model: Any) -> Any:
    if isinstance(model, (str, os.PathLike)):
        if not Path(model).is_file():
            raise FommError(f"ONNX file not found: {model}")
        return onnx.load(str(model))
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    return model


def _op_name(node: Any) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def _operator_problems(nodes: list[Any], counts: Counter, opset: int) -> tuple[list[str], list[str]]:
    """Errors and warnings from the opset and the operator table."""
    errors, warnings = [], []
    if opset > TENSORRT_MAX_OPSET:
        errors.append(f"opset {opset} is above {TENSORRT_MAX_OPSET}, the newest TensorRT 8.5 parses: "
                      f"export with --opset {TENSORRT_MAX_OPSET}")
    for op in sorted(counts):
        node = next(n for n in nodes if _op_name(n) == op)
        if node.domain not in ("", "ai.onnx"):
            errors.append(f"{op} (custom domain '{node.domain}', node '{node.name}') has no TensorRT implementation "
                          "without a plugin")
        elif op not in TENSORRT_SUPPORTED_OPS:
            errors.append(f"{op} (node '{node.name}', ×{counts[op]}) is not supported by TensorRT 8.5's ONNX parser")
        elif op in TENSORRT_RISKY_OPS:
            warnings.append(f"{op} ×{counts[op]}: {TENSORRT_RISKY_OPS[op]}")
    return errors, warnings


def _resize_problems(node: Any, attrs: dict[str, Any]) -> list[str]:
    errors = []
    if attrs.get("antialias", 0):
        errors.append(f"Resize '{node.name}' uses antialias (opset 18): export at the detector's input size")
    mode = attrs.get("mode", b"nearest").decode()
    if mode not in ("nearest", "linear"):
        errors.append(f"Resize '{node.name}' mode '{mode}' is not supported (nearest, linear only)")
    transform = attrs.get("coordinate_transformation_mode", b"half_pixel").decode()
    if transform not in RESIZE_TRANSFORMS:
        errors.append(f"Resize '{node.name}' coordinate transformation '{transform}' is not supported")
    return errors


def _node_problems(onnx: Any, node: Any, opset: int, constants: set[str]) -> list[str]:
    """What stops TensorRT 8.5 in one node (operators it supports only with restrictions)."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Resize":
        return _resize_problems(node, attrs)
    if node.op_type == "GridSample" and opset < 16:
        return [f"GridSample '{node.name}' needs opset >= 16"]
    if node.op_type == "Einsum" and ("..." in attrs.get("equation", b"").decode() or len(node.input) > 2):
        return [f"Einsum '{node.name}' ({attrs.get('equation', b'').decode()}): TensorRT 8.5 supports "
                "two-operand equations without ellipsis only"]
    if node.op_type in ("Slice", "Squeeze", "Unsqueeze"):
        axes = 3 if node.op_type == "Slice" else 1
        if len(node.input) > axes and node.input[axes] and node.input[axes] not in constants:
            return [f"{node.op_type} '{node.name}': TensorRT needs constant axes"]
    if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1 and node.input[1] not in constants:
        return [f"{node.op_type} '{node.name}': TensorRT needs its weights to be an initializer"]
    return []


def _io_problems(model: Any) -> tuple[list[str], list[str], list[str]]:
    """Input and output descriptions, and errors for types TensorRT 8.5 networks do not take."""
    initializers = {i.name for i in model.graph.initializer}
    texts: dict[str, list[str]] = {"input": [], "output": []}
    errors = []
    values = [("input", v) for v in model.graph.input if v.name not in initializers]
    for role, value in values + [("output", v) for v in model.graph.output]:
        dtype, text = _value_info_text(value)
        texts[role].append(text)
        if dtype not in TENSORRT_IO_TYPES:
            errors.append(f"{role} {value.name} is {dtype}: TensorRT 8.5 network {role}s must be one of "
                          f"{', '.join(sorted(TENSORRT_IO_TYPES))}")
    return texts["input"], texts["output"], errors


def check_onnx(model: Any) -> OnnxCheck:
    """Check an ONNX model (path, bytes or ``onnx.ModelProto``): the ONNX checker (with shape
    inference), the opset against TensorRT 8.5's limit of 17, every operator against TensorRT 8.5's
    supported list and its restrictions, and the input/output types TensorRT accepts."""
    onnx = require("onnx", "checking ONNX models")
    model = _as_model(onnx, model)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    try:
        onnx.checker.check_model(model, full_check=True)
        checker_error = None
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        checker_error = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    nodes = list(model.graph.node)
    counts = Counter(_op_name(n) for n in nodes)
    errors, warnings = _operator_problems(nodes, counts, opset)
    constants = {i.name for i in model.graph.initializer} | {o for n in nodes if n.op_type == "Constant" for o in n.output}
    for node in nodes:
        errors += _node_problems(onnx, node, opset, constants)
    inputs, outputs, io_errors = _io_problems(model)
    if any(t.data_type == 7 for t in model.graph.initializer):
        warnings.append("INT64 initialisers: TensorRT casts them to INT32 (fine for shapes and indices)")
    return OnnxCheck(opset, dict(counts), checker_error, errors + io_errors, warnings, inputs, outputs)


def compare_onnx(
    detector: LoadedDetector, model: bytes | str | os.PathLike, images: np.ndarray | None = None,
    batch_sizes: Sequence[int] = (1, 4), seed: int = 0,
) -> dict[str, float]:
    """Largest absolute difference per output between the PyTorch detector (its own ``forward``)
    and ONNX Runtime (CPU) on ``images`` float32 ``(B, 3, S, S)`` in [0, 1], or on random images
    at each of ``batch_sizes`` (a static-batch model is run at its own batch size)."""
    session = onnx_session(model, threads=1)
    fixed = session.get_inputs()[0].shape[0]
    if images is None:
        rng = np.random.default_rng(seed)
        sizes = [fixed] if isinstance(fixed, int) else list(batch_sizes)
        batches = [rng.random((b, 3, detector.input_size, detector.input_size), dtype=np.float32) for b in sizes]
    else:
        batches = [np.asarray(images, dtype=np.float32)]
    worst = {name: 0.0 for name in OUTPUT_NAMES}
    module = detector.network.eval()
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
