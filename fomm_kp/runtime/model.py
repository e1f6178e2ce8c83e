"""A trained FOMM ready for inference: loaded from a checkpoint, detects keypoints in frames.

``Model.detect`` takes uint8 frames at the API boundary and returns keypoints in the pixels of
those frames (or of the original frames the crop boxes were taken from): the
:class:`~fomm_kp.runtime.detector.Detector` surface. Animation and reconstruction use the whole
network (``Model.network``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from fomm_kp.checkpoint import Checkpoint, load_weights, read_checkpoint
from fomm_kp.config import Config
from fomm_kp.crops import CropSettings
from fomm_kp.images import frames_to_images
from fomm_kp.models import FOMM
from fomm_kp.runtime.detector import Detections, choose_device, detections_in_frame, detector_crops

__all__ = ["Model"]


class Model:
    """A trained FOMM (detector + motion + generator) with its config, where it looks (``crop``, read
    from the checkpoint metadata once) and the rest of its training metadata."""

    def __init__(self, network: FOMM, config: Config, meta: dict[str, Any] | None = None,
                 step: int = 0, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.network = network.to(self.device).eval()
        self.config = config
        self.meta = dict(meta or {})
        self.crop = CropSettings.from_meta(self.meta)
        self.step = step

    @property
    def num_keypoints(self) -> int:
        return self.config.model.detector.num_keypoints

    @property
    def detector_size(self) -> int:
        return self.config.model.detector.input_size

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> "Model":
        return cls.from_checkpoint(read_checkpoint(path), path, device)

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, source: str | os.PathLike,
                        device: str | torch.device | None = None) -> "Model":
        """The model of a teacher checkpoint already read (``source`` names it in errors)."""
        network = FOMM(checkpoint.config.model)
        load_weights(network.parts(), checkpoint.state_dicts, source)
        return cls(network, checkpoint.config, checkpoint.meta, checkpoint.step, choose_device(device))

    @torch.no_grad()
    def detect(self, frames: np.ndarray, boxes: np.ndarray | None = None) -> Detections:
        """Detect keypoints in uint8 frames ``(B, H, W, 3)``.

        With ``boxes`` ``(B, 4)`` (x0, y0, x1, y1 in pixels of ``frames``), each frame is cropped to
        its box first; coordinates are returned in pixels of the uncropped frames either way.
        """
        return self.detect_resized(*detector_crops(frames, boxes, self.detector_size))

    @torch.no_grad()
    def detect_resized(self, crops: np.ndarray, boxes: np.ndarray) -> Detections:
        """Detect in crops already resized to the detector's input size; map back through ``boxes``."""
        out = self.network.detector(frames_to_images(crops, self.device))
        return detections_in_frame(out.keypoints, out.scores, out.jacobians, out.covariances, boxes)
