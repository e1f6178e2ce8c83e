"""A mobile-style student keypoint detector, distilled from a trained FOMM detector (the teacher).

A patch-convolution stem (4×4, stride 4) and a depthwise-separable encoder (strides 4 → 32), then a
light top-down decoder with additive skips, produce K heatmap logits and 4K jacobian maps at a
quarter of the input side. By default the student reads crops at twice the teacher's input size
(128 px for a 64-px teacher: it sees more detail for the same cost, and a 128-px crop needs no
resize). The heatmap is the spatial softmax of the logits taken as if they were nearest-upsampled
to the teacher's heatmap size, computed exactly at the low resolution (:func:`heatmap_head_outputs`),
so the student's keypoints, covariances and concentration scores are on the teacher's grid and mean
the same things, at a fraction of the cost. Jacobians are pooled from the jacobian maps with the
heatmap, as in the teacher.

Every operation exports to ONNX (opset 17) and is in TensorRT 8.5's supported set: convolutions,
batch norm, ReLU, ``Resize`` (nearest ×2), ``LogSoftmax``, ``Exp``, ``MatMul``,
``ReduceSum`` and element-wise arithmetic. No ``Einsum``, no ``torch.inverse``, no
scatter. The same head (:func:`heatmap_head_outputs`) is used to export the teacher.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fomm_kp.config import DetectorConfig
from fomm_kp.errors import FommError
from fomm_kp.settings import check, each, flag, integer, number, one_of, refuse
from fomm_kp.geometry import coordinate_grid
from fomm_kp.models.keypoint_detector import KeypointOutput

__all__ = [
    "StudentConfig",
    "StudentDetector",
    "student_config_for",
    "heatmap_head_outputs",
    "count_flops",
    "count_parameters",
]


@dataclass(frozen=True)
class StudentConfig:
    """Architecture of the student detector (stored as plain data in the student checkpoint).

    The stem (a ``stem_stride × stem_stride`` patch convolution, or 3×3 stride 2) brings the input
    to stride ``stem_stride``; ``widths`` are the encoder channels there and at each further
    halving; the decoder climbs back to ``head_stride`` with ``decoder_width`` channels.
    ``heatmap_size`` is the side of the heatmaps (the teacher's, so that scores and covariances are
    comparable); the student's input may be larger than the teacher's (it sees more detail).
    """

    num_keypoints: int = 10
    input_size: int = 128
    heatmap_size: int = 64
    stem_stride: int = 4
    widths: tuple[int, ...] = (16, 32, 64, 96)
    blocks_per_stage: tuple[int, ...] = (0, 1, 1, 2)  # extra stride-1 residual DS blocks per stage
    decoder_width: int = 48
    head_stride: int = 4
    temperature: float = 0.1
    estimate_jacobian: bool = True

    def __post_init__(self) -> None:
        check(self, num_keypoints=integer(1), input_size=integer(8), heatmap_size=integer(1), stem_stride=one_of(2, 4),
              widths=each(integer(1), 2), blocks_per_stage=each(integer(0), 2), decoder_width=integer(1),
              head_stride=integer(1), temperature=number(above=0.0), estimate_jacobian=flag())
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "blocks_per_stage", tuple(self.blocks_per_stage))
        if len(self.blocks_per_stage) != len(self.widths):
            refuse(self, "blocks_per_stage", f"as long as widths ({len(self.widths)})")
        strides = [self.stem_stride * 2**i for i in range(len(self.widths))]
        if self.input_size % strides[-1]:
            refuse(self, "input_size", f"a multiple of {strides[-1]}")
        if self.head_stride not in strides:
            refuse(self, "head_stride", f"one of {strides}")
        if self.heatmap_size % (self.input_size // self.head_stride):
            refuse(self, "heatmap_size", f"a multiple of the head resolution {self.input_size // self.head_stride}")


def student_config_for(teacher: DetectorConfig, input_scale: int = 2, **overrides: Any) -> StudentConfig:
    """The default student for a teacher detector: same K, temperature and heatmap size; input
    ``input_scale`` × the teacher's (2: a 4-px patch stem, so 128-px crops cost what 64-px ones
    would with a stride-2 stem; 1: the teacher's input with a stride-2 stem); head at half the
    teacher's heatmap side."""
    if input_scale not in (1, 2):
        raise FommError(f"input_scale must be 1 or 2, got {input_scale}")
    base = StudentConfig(num_keypoints=teacher.num_keypoints, input_size=teacher.input_size * input_scale,
                         heatmap_size=teacher.input_size, stem_stride=2 * input_scale,
                         head_stride=2 * input_scale, temperature=teacher.temperature,
                         estimate_jacobian=teacher.estimate_jacobian)
    return dataclasses.replace(base, **overrides) if overrides else base


class _ConvBNReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 groups: int = 1, relu: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _SeparableBlock(nn.Module):
    """Depthwise 3×3 (stride 1 or 2) → pointwise 1×1; residual when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = _ConvBNReLU(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pointwise = _ConvBNReLU(in_channels, out_channels, 1, relu=False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pointwise(self.depthwise(x))
        return F.relu(out + x) if self.residual else F.relu(out)


def heatmap_head_outputs(
    logits: torch.Tensor, raw_jacobians: torch.Tensor | None, temperature: float, upscale: int = 1,
) -> KeypointOutput:
    """Heatmap logits → :class:`KeypointOutput`, with export-friendly operations only.

    Args:
        logits: ``(B, K, h, w)`` heatmap logits (divided by ``temperature`` before the softmax).
        raw_jacobians: ``(B, 4K, h, w)`` per-pixel jacobian entries, or None (identity jacobians).
        upscale: the outputs are those of the logits nearest-upsampled by this factor (each logit
            repeated over an ``upscale × upscale`` block), computed exactly at the low resolution:
            keypoints are unchanged, each block adds the variance of a uniform block to the
            covariance and ``log(upscale²)`` to the entropy.
    Returns keypoints ``(B, K, 2)``, jacobians ``(B, K, 2, 2)``, heatmaps ``(B, K, h·upscale, w·upscale)``,
    covariances ``(B, K, 2, 2)`` and scores ``(B, K)`` as :func:`fomm_kp.geometry.heatmap_statistics`
    defines them (same grid convention), without ``Einsum``.
    """
    # K, h and w are fixed by the architecture: plain ints keep them constant in an exported graph,
    # and the batch axis stays symbolic (-1).
    k, h, w = int(logits.shape[1]), int(logits.shape[2]), int(logits.shape[3])
    z = logits.float().reshape(-1, k, h * w) / temperature
    log_probabilities = torch.log_softmax(z, dim=2)  # (B, K, h w)
    flat = torch.exp(log_probabilities)
    # One matrix product gives the first and second moments: columns x, y, x², xy, y².
    grid = coordinate_grid(h, w, logits.device, torch.float32).reshape(h * w, 2)
    x, y = grid[:, 0], grid[:, 1]
    moments = torch.matmul(flat, torch.stack([x, y, x * x, x * y, y * y], dim=1))  # (B, K, 5)
    keypoints = moments[..., 0:2]
    mx, my = moments[..., 0], moments[..., 1]
    # Variance of the fine pixel centres inside one block: ((r² - 1) / 3) / (r W)² per axis.
    block_x = (upscale**2 - 1) / 3.0 / float(upscale * w) ** 2
    block_y = (upscale**2 - 1) / 3.0 / float(upscale * h) ** 2
    cxx = moments[..., 2] - mx * mx + block_x
    cxy = moments[..., 3] - mx * my
    cyy = moments[..., 4] - my * my + block_y
    covariances = torch.stack([cxx, cxy, cxy, cyy], dim=-1).reshape(-1, k, 2, 2)
    entropy = -(flat * log_probabilities).sum(dim=2) + 2.0 * math.log(upscale)
    scores = (1 - entropy / math.log(h * w * upscale * upscale)).clamp(0, 1)
    heatmaps = flat.reshape(-1, k, h, w)
    if raw_jacobians is None:
        eye = torch.eye(2, device=logits.device, dtype=torch.float32)
        jacobians = eye.reshape(1, 1, 2, 2).expand(logits.shape[0], k, 2, 2)
    else:
        raw = raw_jacobians.float().reshape(-1, k, 4, h * w)
        jacobians = torch.matmul(raw, flat.reshape(-1, k, h * w, 1)).reshape(-1, k, 2, 2)
    if upscale > 1:
        heatmaps = F.interpolate(heatmaps, scale_factor=float(upscale), mode="nearest") / float(upscale**2)
    return KeypointOutput(keypoints, jacobians, heatmaps, covariances, scores)


class StudentDetector(nn.Module):
    """Mobile-style keypoint detector on ``(B, 3, S, S)`` images in [0, 1], ``S = config.input_size``.

    Returns a :class:`~fomm_kp.models.keypoint_detector.KeypointOutput` in the teacher's conventions.
    Unlike the teacher it does not resize: feeding another size is an error (resize outside, so
    that no resize op ends up in an exported graph).
    """

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.widths
        if config.stem_stride == 4:  # patch convolution: each 4×4 block → one feature vector
            self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 4, stride=4, bias=False), nn.BatchNorm2d(widths[0]),
                                      nn.ReLU(inplace=True))
        else:
            self.stem = _ConvBNReLU(3, widths[0], 3, stride=2)
        stages = []
        previous = widths[0]
        for i, (width, extra) in enumerate(zip(widths, config.blocks_per_stage)):
            blocks: list[nn.Module] = [] if i == 0 else [_SeparableBlock(previous, width, stride=2)]
            if i == 0 and previous != width:
                blocks.append(_SeparableBlock(previous, width))
            blocks += [_SeparableBlock(width, width) for _ in range(extra)]
            stages.append(nn.Sequential(*blocks))
            previous = width
        self.stages = nn.ModuleList(stages)
        # Decoder: from the deepest stage up to head_stride, adding projected skips.
        head_level = int(math.log2(config.head_stride // config.stem_stride))  # the stage at head_stride
        d = config.decoder_width
        self.head_level = head_level
        self.top = _ConvBNReLU(widths[-1], d, 1)
        self.laterals = nn.ModuleList(_ConvBNReLU(widths[i], d, 1, relu=False)
                                      for i in range(len(widths) - 2, head_level - 1, -1))
        self.refine = nn.ModuleList(_SeparableBlock(d, d) for _ in self.laterals)
        k = config.num_keypoints
        self.upscale = config.heatmap_size // (config.input_size // config.head_stride)
        self.heatmap_head = nn.Conv2d(d, k, 1)
        if config.estimate_jacobian:
            self.jacobian_head = nn.Conv2d(d, 4 * k, 1)
            nn.init.zeros_(self.jacobian_head.weight)
            with torch.no_grad():
                self.jacobian_head.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(k))
        else:
            self.jacobian_head = None

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` → decoder features ``(B, decoder_width, S / head_stride, S / head_stride)``."""
        x = self.stem(images)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        out = self.top(skips[-1])
        for lateral, refine, skip in zip(self.laterals, self.refine, reversed(skips[self.head_level:-1])):
            out = F.interpolate(out, scale_factor=2.0, mode="nearest")
            out = refine(F.relu(out + lateral(skip)))
        return out

    def forward(self, images: torch.Tensor) -> KeypointOutput:
        size = self.config.input_size
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != size or images.shape[3] != size:
            raise ValueError(f"expected images (B, 3, {size}, {size}), got shape {tuple(images.shape)}")
        features = self.features(images)
        logits = self.heatmap_head(features)
        raw = self.jacobian_head(features) if self.jacobian_head is not None else None
        return heatmap_head_outputs(logits, raw, self.config.temperature, self.upscale)


def count_parameters(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def count_flops(module: nn.Module, input_size: int, channels: int = 3) -> int:
    """FLOPs (2 × multiply-accumulates of convolutions and matrix products, as counted by
    ``torch.utils.flop_counter``) of one forward pass on one ``input_size²`` image. Element-wise
    operations are not counted."""
    parameter = next(module.parameters())
    images = torch.rand(1, channels, input_size, input_size, device=parameter.device)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(images)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())
