"""Settings of distillation (stored in the student checkpoint's metadata)."""

from __future__ import annotations

from dataclasses import dataclass

from fomm_kp.settings import FRACTION, SEED, check, flag, integer, number

__all__ = ["DistillConfig"]

WEIGHT = number(0.0)


@dataclass(frozen=True)
class DistillConfig:
    """Settings of :func:`fomm_kp.deploy.distill.distill`: steps and optimiser, the held-out split,
    the augmentation of the student's crops and the weights of the loss terms."""

    steps: int = 4000
    minutes: float = 0.0  # > 0: stop after this many minutes of student training
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    max_frames: int = 3000  # frames read from the video (evenly strided)
    holdout_fraction: float = 0.1  # fraction of frames held out, in contiguous blocks
    holdout_blocks: int = 10
    guard_frames: int = 2  # samples left out on each side of a held-out block
    augmented_copies: int = 2  # augmented crops per training frame, besides the plain crop
    refresh_every: int = 0  # > 0: draw new augmented copies (and teacher targets) every this many steps
    rotation: float = 15.0  # degrees
    scale: float = 0.1
    shift: float = 0.05  # fraction of the crop side
    flip: bool = False
    color_jitter: float = 0.15
    noise: float = 0.02
    keypoint_weight: float = 1.0
    jacobian_weight: float = 0.1
    covariance_weight: float = 10.0
    score_weight: float = 0.1
    heatmap_weight: float = 0.5
    seed: int = 0
    num_threads: int = 0  # torch CPU threads; 0 = torch's default

    def __post_init__(self) -> None:
        check(self, steps=integer(0), minutes=number(0.0), batch_size=integer(1), learning_rate=number(above=0.0),
              weight_decay=WEIGHT, max_frames=integer(10), holdout_fraction=number(above=0.0, below=1.0),
              holdout_blocks=integer(1), guard_frames=integer(0), augmented_copies=integer(0),
              refresh_every=integer(0), rotation=number(0.0, 180.0), scale=number(0.0, below=1.0),
              shift=number(0.0, 1.0), flip=flag(), color_jitter=FRACTION, noise=WEIGHT, keypoint_weight=WEIGHT,
              jacobian_weight=WEIGHT, covariance_weight=WEIGHT, score_weight=WEIGHT, heatmap_weight=WEIGHT,
              seed=SEED, num_threads=integer(0))
