"""The whole First Order Motion Model: detector + background motion + dense motion + generator."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from fomm_kp.config import ModelConfig
from fomm_kp.models.dense_motion import BackgroundMotion, DenseMotionNetwork, MotionOutput
from fomm_kp.models.generator import Generator, GeneratorOutput
from fomm_kp.models.keypoint_detector import KeypointDetector, KeypointOutput, resize_images

__all__ = ["FOMM", "Reconstruction"]


class Reconstruction(NamedTuple):
    prediction: torch.Tensor  # (B, C, H, W)
    deformed: torch.Tensor  # (B, C, H, W) source warped by the flow alone
    kp_source: KeypointOutput
    kp_driving: KeypointOutput
    motion: MotionOutput
    background: torch.Tensor | None  # (B, 2, 3) global affine, or None
    visibility: torch.Tensor | None = None  # (B, 1, H, W): share of the warped source (GeneratorOutput)


class FOMM(nn.Module):
    """Reconstructs the driving frame from the source frame through keypoints and local affines.

    Frames may be given at any size: the detector, the dense-motion network and the background
    motion resize them to their own input sizes, and the generator reconstructs at ``image_size``
    (so the detector can look at finer frames than are reconstructed: ``config.frame_size``).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config.num_channels
        self.detector = KeypointDetector(config.detector, c)
        self.dense_motion = DenseMotionNetwork(config.dense_motion, config.detector.num_keypoints, c)
        self.background = BackgroundMotion(c, width=config.dense_motion.block_expansion, size=config.dense_motion.input_size) if config.dense_motion.background_motion else None
        self.generator = Generator(config.generator, c)

    def parts(self) -> dict[str, nn.Module | None]:
        """The trained parts by the names their weights have in a checkpoint (no background: None)."""
        return {"detector": self.detector, "dense_motion": self.dense_motion, "generator": self.generator,
                "background": self.background}

    def animate(
        self, source: torch.Tensor, kp_source: KeypointOutput, kp_driving: KeypointOutput,
        background: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, MotionOutput]:
        """Render ``source`` moved from ``kp_source`` to ``kp_driving`` → (prediction, deformed, motion)."""
        out, motion = self.render(source, kp_source, kp_driving, background)
        return out.prediction, out.deformed, motion

    def render(
        self, source: torch.Tensor, kp_source: KeypointOutput, kp_driving: KeypointOutput,
        background: torch.Tensor | None = None,
    ) -> tuple[GeneratorOutput, MotionOutput]:
        """Like :meth:`animate`, with the generator's whole output (its visibility map too), at ``image_size``."""
        motion = self.dense_motion(source, kp_source, kp_driving, background)
        return self.generator(resize_images(source, self.config.image_size), motion.flow, motion.occlusion), motion

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> Reconstruction:
        kp_source = self.detector(source)
        kp_driving = self.detector(driving)
        background = self.background(source, driving) if self.background is not None else None
        out, motion = self.render(source, kp_source, kp_driving, background)
        return Reconstruction(out.prediction, out.deformed, kp_source, kp_driving, motion, background, out.visibility)
