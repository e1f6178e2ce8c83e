"""Typed, frozen configuration of a training run, loaded strictly from YAML.

The dataclass defaults are the CPU default (``configs/cpu.yaml``), so ``Config()``, an empty YAML
file and no ``--config`` at all give the same run. A config file gives any subset of keys; an unknown
key, a value of the wrong type or out of its range is an error of one line naming the file and the
key (:mod:`fomm_kp.settings`). Every value is checked on construction, so a config built in Python
is checked too. The config travels inside every checkpoint as plain data (:func:`to_dict` /
:func:`from_dict`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from fomm_kp.errors import FommError
from fomm_kp.files import check_regular, read_text
from fomm_kp.settings import (
    FRACTION,
    SEED,
    InvalidSetting,
    check,
    each,
    flag,
    from_data,
    integer,
    number,
    one_of,
    refuse,
    text,
    to_data,
)

__all__ = [
    "DetectorConfig", "DenseMotionConfig", "GeneratorConfig", "ModelConfig", "LossConfig", "TrainConfig",
    "LocalizeConfig", "IdentityConfig", "DataConfig", "Config", "MAX_SUBJECTS", "load_config", "builtin_config",
    "BUILTIN_CONFIGS", "to_dict", "from_dict",
]

SIZE = integer(8)  # image sides: a few pixels after the hourglasses' halvings
WEIGHT = number(0.0)  # loss weights
WIDTH = integer(1)
AUTO = one_of("auto", "on", "off")


def _halvings(owner: Any, size_key: str, blocks: int) -> None:
    if getattr(owner, size_key) % 2**blocks:
        refuse(owner, size_key, f"a multiple of 2**{blocks} = {2**blocks} (it is halved {blocks} times)")


@dataclass(frozen=True)
class DetectorConfig:
    """Keypoint detector: hourglass on a downscaled frame → K heatmaps → soft-argmax."""

    num_keypoints: int = 32
    input_size: int = 64  # side of the square frame the detector sees, in pixels
    block_expansion: int = 32
    max_features: int = 256
    num_blocks: int = 4  # hourglass depth (down/up blocks)
    temperature: float = 0.1  # spatial-softmax temperature
    estimate_jacobian: bool = True
    head_kernel: int = 7  # kernel of the heatmap and jacobian heads (FOMM: 7; 3 costs 5x less)

    def __post_init__(self) -> None:
        check(self, num_keypoints=integer(1), input_size=SIZE, block_expansion=WIDTH, max_features=WIDTH,
              num_blocks=integer(1, 8), temperature=number(above=0.0), estimate_jacobian=flag(),
              head_kernel=one_of(1, 3, 5, 7, 9))
        _halvings(self, "input_size", self.num_blocks)


@dataclass(frozen=True)
class DenseMotionConfig:
    """Dense motion network: K+1 candidate motions → soft masks → flow and occlusion."""

    input_size: int = 32
    block_expansion: int = 32
    max_features: int = 256
    num_blocks: int = 3
    kp_variance: float = 0.01  # variance of the gaussian keypoint heatmaps, in normalised units²
    estimate_occlusion: bool = True
    background_motion: bool = True  # learned global affine (camera/background) for the K+1-th slot

    def __post_init__(self) -> None:
        check(self, input_size=SIZE, block_expansion=WIDTH, max_features=WIDTH, num_blocks=integer(1, 8),
              kp_variance=number(above=0.0), estimate_occlusion=flag(), background_motion=flag())
        _halvings(self, "input_size", self.num_blocks)


@dataclass(frozen=True)
class GeneratorConfig:
    """Occlusion-aware generator: encode source, warp its features by the flow, decode."""

    block_expansion: int = 32
    max_features: int = 256
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 3
    # Compose the output in pixels, m · warp(source) + (1 − m) · decoded, with a learned mask m:
    # sharper, keeps the source's identity, and renders at the source's full resolution.
    blend: bool = False

    def __post_init__(self) -> None:
        check(self, block_expansion=WIDTH, max_features=WIDTH, num_down_blocks=integer(0, 8),
              num_bottleneck_blocks=integer(0), blend=flag())


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 64  # side of the square frames the generator reconstructs
    num_channels: int = 3
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)

    def __post_init__(self) -> None:
        check(self, image_size=SIZE, num_channels=one_of(3))
        _halvings(self, "image_size", self.generator.num_down_blocks)

    @property
    def frame_size(self) -> int:
        """Side of the frames a training step and the detector are given. The detector may look at
        finer frames than the generator reconstructs (``detector.input_size`` > ``image_size``):
        each network resizes its input to its own size."""
        return max(self.image_size, self.detector.input_size)


@dataclass(frozen=True)
class LossConfig:
    """Weights of the self-supervised objective."""

    scales: tuple[float, ...] = (1.0, 0.5, 0.25)  # reconstruction pyramid
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
    # Foreground prior (0: off; only where data.foreground resolves on): heatmap mass on pixels that
    # match the clip's static scene is penalised (worm: keypoints on it 40% -> 97%).
    foreground: float = 1.0
    # Image-space warp term (0: off): the source warped by the dense flow alone must already look
    # like the driving frame (motion-weighted, like the reconstruction), so that the keypoints' motion
    # gets a pixel-level signal from the first step, before the generator has learnt to decode.
    warp: float = 0.0

    def __post_init__(self) -> None:
        check(self, scales=each(number(above=0.0, high=1.0)), l1=WEIGHT, ssim=WEIGHT, motion_weight=WEIGHT,
              equivariance_value=WEIGHT, equivariance_jacobian=WEIGHT, rotation_equivariance=WEIGHT,
              perceptual=WEIGHT, perceptual_weights=text(), background_prior=WEIGHT, separation=WEIGHT,
              separation_sigma=number(above=0.0), foreground=WEIGHT, warp=WEIGHT)
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        if self.perceptual > 0 and not self.perceptual_weights:
            refuse(self, "perceptual_weights", "the path of local VGG-19 weights when perceptual > 0")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
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

    def __post_init__(self) -> None:
        check(self, steps=integer(0), minutes=number(0.0), batch_size=integer(1), learning_rate=number(above=0.0),
              min_gap=integer(1), max_gap=integer(1), max_frames=integer(2), flip=flag(), color_jitter=FRACTION,
              mixed_precision=flag(), seed=SEED, preview_every=integer(0), checkpoint_every=integer(0),
              log_every=integer(0), num_threads=integer(0))
        if self.max_gap < self.min_gap:
            refuse(self, "max_gap", f"at least min_gap ({self.min_gap})")


@dataclass(frozen=True)
class LocalizeConfig:
    """How the subject is found, followed and boxed (:mod:`fomm_kp.localize`; ``data.localizer`` in a
    config file, whose ``margin`` is ``data.box_margin``).

    Attributes:
        work_size: frames are reduced by an integer factor so that their longer side is about this
            many pixels before any processing (speed; the subject must stay a few pixels wide).
        background_samples: frames sampled evenly across the video for the median background.
        threshold_sigmas: foreground = difference above median + this many robust (MAD) sigmas of
            the frame's difference image ...
        min_contrast: ... and above this many grey levels (0–255), whichever is larger.
        opening_radius: radius (work pixels) of the morphological opening that removes thin
            structures (tails, trails, edges of a slightly moved camera) and noise.
        min_area_fraction: smallest subject area, as a fraction of the frame area.
        core_fraction: before its moments are taken, the subject loses appendages (tails, legs)
            thinner than this fraction of its thickest part (0: keep the whole component).
        margin: box side = margin × (a high quantile of the subject's major-axis length).
        size_quantile: that quantile, over the frames where the subject was found.
        min_side: smallest box side in pixels.
        smooth_sigma: Gaussian smoothing of box centres over time, in frames (0: none).
        max_jump_fraction: a detection farther than this × box side from the previous one must
            have at least this share of the strongest candidate's mass to be preferred over the
            nearest candidate (keeps the track on one animal when a second blob appears).
        max_area_fraction: localisation is turned off (``localize: auto``) when the subject's median
            area exceeds this fraction of the frame (whole-frame subjects: faces, fire) ...
        max_side_fraction: ... or when the box side would exceed this fraction of the frame's
            shorter side ...
        min_found_fraction: ... or when the subject is found in fewer than this share of frames ...
        min_dominance: ... or when the subject's median share of the foreground is below this
            (several comparable moving parts: a talking face, flames, several animals).
        axis_min_elongation: below this elongation the core's axis is not trusted for the heading
            (see :attr:`fomm_kp.localize.blobs.Blob.heading`).
        align_min_elongation: crops are turned to the subject's heading (``align: auto``) only when
            its median elongation reaches this: a round subject has no stable axis.
        motion_mass: the motion crop (``data.motion_crop``) holds this share of the change of the
            sampled frames from the static scene, along x and along y ...
        motion_margin: ... widened by this factor ...
        motion_max_area: ... and is used only when it covers at most this share of the frame.
    """

    work_size: int = 160
    background_samples: int = 48
    threshold_sigmas: float = 6.0
    min_contrast: float = 12.0
    opening_radius: int = 1
    min_area_fraction: float = 2e-4
    margin: float = 1.5
    size_quantile: float = 0.5
    min_side: int = 32
    core_fraction: float = 0.4
    smooth_sigma: float = 2.0
    max_jump_fraction: float = 1.0
    max_area_fraction: float = 0.1
    max_side_fraction: float = 0.75
    min_found_fraction: float = 0.7
    min_dominance: float = 0.8
    axis_min_elongation: float = 1.5
    align_min_elongation: float = 1.4
    motion_mass: float = 0.95
    motion_margin: float = 1.25
    motion_max_area: float = 0.5

    def __post_init__(self) -> None:
        check(self, work_size=integer(16), background_samples=integer(3), threshold_sigmas=number(0.0),
              min_contrast=number(0.0, 255.0), opening_radius=integer(0, 32), min_area_fraction=FRACTION,
              margin=number(1.0), size_quantile=number(above=0.0, high=1.0), min_side=integer(4),
              core_fraction=number(0.0, below=1.0), smooth_sigma=number(0.0), max_jump_fraction=number(above=0.0),
              max_area_fraction=number(above=0.0, high=1.0), max_side_fraction=number(above=0.0, high=1.0),
              min_found_fraction=FRACTION, min_dominance=FRACTION, axis_min_elongation=number(1.0),
              align_min_elongation=number(1.0), motion_mass=number(above=0.0, high=1.0), motion_margin=number(1.0),
              motion_max_area=number(above=0.0, high=1.0))


@dataclass(frozen=True)
class IdentityConfig:
    """How several subjects are told apart and followed (``data.identity``; used only when
    ``data.subjects`` is not 1; :mod:`fomm_kp.localize.multi`, :mod:`fomm_kp.localize.identity`).

    Attributes:
        max_gap: frames a missed subject keeps its identity (its crop interpolated); longer: NaN keypoints.
        min_relative_area: a foreground part smaller than this × a typical subject's is not a subject.
        split_area: a part that several subjects' predictions fall on (or, before any, this many typical
            areas large) is split by a watershed seeded at its body peaks nearest them.
        persist_fraction: ``subjects: auto`` counts separate parts seen in at least this share of frames.
        size_weight, appearance_weight: assignment cost of a doubling of area and of a difference in
            appearance (mean colour, grey-level histogram), against one body length of distance.
        max_jump: cost of staying unmatched, in body lengths; a detection farther than
            ``max_jump × sqrt(frames since seen)`` body lengths from a prediction is not its subject.
    """

    max_gap: int = 15
    min_relative_area: float = 0.25
    split_area: float = 1.35
    persist_fraction: float = 0.5
    size_weight: float = 1.0
    appearance_weight: float = 1.0
    max_jump: float = 1.5

    def __post_init__(self) -> None:
        check(self, max_gap=integer(0), min_relative_area=number(0.0, 1.0), split_area=number(above=1.0),
              persist_fraction=number(above=0.0, high=1.0), size_weight=WEIGHT, appearance_weight=WEIGHT,
              max_jump=number(above=0.0))


MAX_SUBJECTS = 64


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
    # When no single subject is localised: crop every frame to the fixed region where the frame
    # changes (auto: when that region is at most localizer.motion_max_area of the frame), so that
    # small moving parts of a whole-frame subject get more pixels.
    motion_crop: Literal["auto", "off"] = "off"
    # Whether the foreground (what differs from the static scene) is the subject, for loss.foreground.
    # auto: on when one distinct subject stands out in most frames (a travelling animal); off when the
    # change is spread (a talking face's moving parts, a treadmill rig, several animals).
    foreground: Literal["auto", "on", "off"] = "auto"
    # How the subject is found and followed (every field but margin, which is box_margin above).
    localizer: LocalizeConfig = field(default_factory=LocalizeConfig)
    # Animals in the video: 1 (one subject, as before), N, or auto (the number of separate animals
    # that persist over the video). Several subjects are each localised, followed with their
    # identities and cropped; one detector learns from every subject's crops.
    subjects: int | Literal["auto"] = 1
    identity: IdentityConfig = field(default_factory=IdentityConfig)

    def __post_init__(self) -> None:
        check(self, localize=AUTO, box_margin=number(1.0), any_orientation=AUTO, align=AUTO,
              motion_crop=one_of("auto", "off"), foreground=AUTO)
        if self.subjects != "auto" and not integer(1, MAX_SUBJECTS).allows(self.subjects):
            refuse(self, "subjects", f"auto or an integer in [1, {MAX_SUBJECTS}]")
        if self.localizer.margin != LocalizeConfig.margin:
            raise InvalidSetting("localizer.margin", "left out (the margin is data.box_margin)", self.localizer.margin,
                                 type(self).__name__)

    def localize_config(self) -> LocalizeConfig:
        """The settings of :mod:`fomm_kp.localize` for this run, margin included."""
        return replace(self.localizer, margin=self.box_margin)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)


def from_dict(data: Any, source: str = "config") -> Config:
    """Build a :class:`Config` from plain data, strictly (unknown keys, wrong types and values out of
    range are errors); ``None`` or ``{}`` gives the defaults."""
    if data is not None and not isinstance(data, dict):
        raise FommError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    return from_data(Config, data, source)


def to_dict(config: Any) -> dict:
    """Plain data (dicts, lists, numbers, strings) for YAML, JSON or a checkpoint."""
    return to_data(config)


_BUILTIN_DIR = Path(__file__).resolve().parent / "configs"
BUILTIN_CONFIGS = tuple(sorted(p.stem for p in _BUILTIN_DIR.glob("*.yaml")))


def builtin_config(name: str) -> Config:
    """One of the configs shipped with the package: ``cpu`` (the default), ``cpu128`` (128-px frames),
    ``gpu`` (paper widths, 256 px), ``animation-cpu`` / ``animation-gpu`` (motion transfer), ``tiny`` (tests)."""
    if name not in BUILTIN_CONFIGS:
        raise FommError(f"unknown built-in config '{name}' (choose from {', '.join(BUILTIN_CONFIGS)})")
    return load_config(_BUILTIN_DIR / f"{name}.yaml")


def load_config(path: str | os.PathLike | None) -> Config:
    """Load a YAML config file strictly; ``None`` gives the CPU default.

    A name without a path separator or ``.yaml`` suffix (``cpu``, ``gpu``, ``tiny``, ...) selects a
    built-in config.
    """
    if path is None:
        return builtin_config("cpu")
    if str(path) in BUILTIN_CONFIGS:
        return builtin_config(str(path))
    path = check_regular(path, "config file")
    if not path.is_file():
        raise FommError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(read_text(path, "config file"))
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise FommError(f"{path}: not valid YAML ({first})") from None
    return from_dict(data, source=str(path))
