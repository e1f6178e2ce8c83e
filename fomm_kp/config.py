"""Typed, frozen configuration, loaded strictly from YAML.

A config file may give any subset of keys; the rest keep their defaults. An unknown key or a value
of the wrong type is an error that names the key and the file. The config travels inside every
checkpoint as plain data (:func:`to_dict` / :func:`from_dict`).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from fomm_kp.errors import FommError

__all__ = [
    "DetectorConfig",
    "DenseMotionConfig",
    "GeneratorConfig",
    "ModelConfig",
    "LossConfig",
    "TrainConfig",
    "DataConfig",
    "Config",
    "load_config",
    "builtin_config",
    "BUILTIN_CONFIGS",
    "to_dict",
    "from_dict",
]


@dataclass(frozen=True)
class DetectorConfig:
    """Keypoint detector: hourglass on a downscaled frame → K heatmaps → soft-argmax."""

    num_keypoints: int = 10
    input_size: int = 64  # side of the square frame the detector sees, in pixels
    block_expansion: int = 32
    max_features: int = 256
    num_blocks: int = 4  # hourglass depth (down/up blocks)
    temperature: float = 0.1  # spatial-softmax temperature
    estimate_jacobian: bool = True


@dataclass(frozen=True)
class DenseMotionConfig:
    """Dense motion network: K+1 candidate motions → soft masks → flow and occlusion."""

    input_size: int = 64
    block_expansion: int = 32
    max_features: int = 256
    num_blocks: int = 4
    kp_variance: float = 0.01  # variance of the gaussian keypoint heatmaps, in normalised units²
    estimate_occlusion: bool = True
    background_motion: bool = True  # learned global affine (camera/background) for the K+1-th slot


@dataclass(frozen=True)
class GeneratorConfig:
    """Occlusion-aware generator: encode source, warp features by the flow, decode."""

    block_expansion: int = 32
    max_features: int = 256
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 3


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 128  # side of the square frames the generator reconstructs
    num_channels: int = 3
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)


@dataclass(frozen=True)
class LossConfig:
    """Weights of the self-supervised objective."""

    scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)  # reconstruction pyramid
    l1: float = 1.0
    ssim: float = 1.0
    # Emphasis on pixels that change between source and driving: the per-pixel weight is
    # 1 + motion_weight * (normalised frame difference). Keeps keypoints on what moves.
    motion_weight: float = 4.0
    equivariance_value: float = 10.0
    equivariance_jacobian: float = 10.0
    # Keypoints turn with the frame, any angle (only when data.any_orientation is on). Off: at 1 on
    # dlc-openfield it made keypoints worse within the CPU budget (docs/keypoint_accuracy.md).
    rotation_equivariance: float = 0.0
    perceptual: float = 0.0  # VGG-19 perceptual loss; needs perceptual_weights
    perceptual_weights: str = ""  # local path to torchvision-layout vgg19 weights (.pth)
    background_prior: float = 0.1  # keeps the learned background transform small
    # Keypoint separation prior (0: off): without it keypoints bunch up on one spot of the subject
    # (dlc-openfield: regression error 13.9 → 9.4–10.2 px with it; docs/keypoint_accuracy.md).
    separation: float = 1.0
    separation_sigma: float = 0.1  # its length scale, normalised units (the frame spans 2)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1500
    minutes: float = 0.0  # > 0: stop after this many minutes (whichever of steps/minutes comes first)
    batch_size: int = 8
    learning_rate: float = 2e-4
    min_gap: int = 1  # frames between source and driving
    max_gap: int = 30
    max_frames: int = 3000  # frames held in memory for sampling pairs (evenly strided)
    flip: bool = True
    color_jitter: float = 0.1
    mixed_precision: bool = True  # bf16 autocast on CPUs that support it, fp16 on CUDA
    seed: int = 0
    preview_every: int = 250
    checkpoint_every: int = 500
    log_every: int = 100  # steps between log lines
    num_threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass(frozen=True)
class DataConfig:
    localize: Literal["auto", "on", "off"] = "auto"  # crop around a small moving subject
    box_margin: float = 1.5  # crop side = margin × subject size (when localising)
    # The subject may face any way in the frame (top views of animals): quarter-turn augmentation and
    # the rotation-equivariance loss. auto: on when the subject is localised (a small subject in a
    # large frame, as in arena footage), off for whole-frame subjects (faces, upright scenes).
    any_orientation: Literal["auto", "on", "off"] = "auto"
    # Turn each crop so that the subject's heading (principal axis, pointed away from its tail)
    # faces right: the detector then sees the subject one way up (egocentric crops), and keypoints
    # are turned back to the frame. auto: on when the subject is localised and elongated. Off:
    # axis-aligned crops. When on, any_orientation auto resolves to off (turns would undo it).
    align: Literal["auto", "on", "off"] = "auto"


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)


# --------------------------------------------------------------------------------------------
# Strict conversion between plain data and dataclasses.


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise FommError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is Literal:
        if value not in args:
            raise FommError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _convert(value, option, where)
            except FommError as exc:
                errors.append(str(exc))
        raise FommError(f"{where}: {value!r} matches none of {[_type_name(a) for a in args]}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise FommError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item = args[0] if args else Any
        return tuple(_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise FommError(f"{where}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FommError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FommError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise FommError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if tp is Any:
        return value
    raise FommError(f"{where}: unsupported config type {tp}")


def _build(cls: type, data: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise FommError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(sorted(names))})")
    kwargs = {key: _convert(value, hints[key], f"{where}.{key}" if where else key) for key, value in data.items()}
    return cls(**kwargs)


def from_dict(data: dict, source: str = "config") -> Config:
    """Build a :class:`Config` from plain data, strictly (unknown keys and wrong types are errors)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FommError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return _build(Config, data, "")
    except FommError as exc:
        raise FommError(f"{source}: {str(exc).lstrip(': ')}") from None


def to_dict(config: Any) -> dict:
    """Plain data (dicts, lists, numbers, strings) for YAML, JSON or a checkpoint."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return plain(config)


BUILTIN_CONFIGS = ("cpu", "gpu", "tiny")


def _builtin_dir() -> Path:
    return Path(__file__).resolve().parent / "configs"


def builtin_config(name: str) -> Config:
    """One of the configs shipped with the package: ``cpu`` (default), ``gpu`` (paper widths, 256 px), ``tiny`` (tests)."""
    path = _builtin_dir() / f"{name}.yaml"
    if not path.is_file():
        raise FommError(f"unknown built-in config '{name}' (choose from {', '.join(BUILTIN_CONFIGS)})")
    return load_config(path)


def load_config(path: str | os.PathLike | None) -> Config:
    """Load a YAML config file strictly; ``None`` gives the CPU default.

    A name without a path separator or ``.yaml`` suffix (``cpu``, ``gpu``, ``tiny``) selects a built-in config.
    """
    if path is None:
        return builtin_config("cpu")
    text_path = str(path)
    if text_path in BUILTIN_CONFIGS:
        return builtin_config(text_path)
    path = Path(path)
    if not path.is_file():
        raise FommError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise FommError(f"{path}: not valid YAML ({first})") from None
    return from_dict(data, source=str(path))
