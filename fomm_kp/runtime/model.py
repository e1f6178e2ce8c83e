"""A trained model ready for inference: load from a checkpoint, detect keypoints in frames.

``Model.detect`` takes uint8 frames at the API boundary and returns keypoints in the pixels of
those frames (or of the original frames the crop boxes were taken from).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fomm_kp.checkpoint import read_checkpoint
from fomm_kp.config import Config
from fomm_kp.errors import FommError
from fomm_kp.localize.boxes import box_maps
from fomm_kp.models import FOMM
from fomm_kp.video import crop_frame, resize_frame

__all__ = ["Model", "Detections", "choose_device", "frames_to_images", "detector_crops"]

log = logging.getLogger(__name__)


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """The device, chosen once at the API boundary: the requested one, else CUDA when present, else CPU."""
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FommError("CUDA was requested but torch sees no GPU")
    log.info("device: %s", device)
    return device


def frames_to_images(frames: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` → float ``(B, 3, H, W)`` in [0, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise FommError(f"frames must be uint8 (B, H, W, 3), got shape {frames.shape}")
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255


@dataclass(frozen=True)
class Detections:
    """Keypoints of B frames in pixels of the frames given (or of the original frames the boxes cut).

    keypoints ``(B, K, 2)``, scores ``(B, K)``, jacobians ``(B, K, 2, 2)`` and covariances
    ``(B, K, 2, 2)`` in pixel units.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    jacobians: np.ndarray
    covariances: np.ndarray


class Model:
    """A trained FOMM (detector + motion + generator) with its config and training metadata."""

    def __init__(self, network: FOMM, config: Config, meta: dict[str, Any] | None = None,
                 step: int = 0, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.network = network.to(self.device).eval()
        self.config = config
        self.meta = dict(meta or {})
        self.step = step

    @property
    def num_keypoints(self) -> int:
        return self.config.model.detector.num_keypoints

    @property
    def detector_size(self) -> int:
        return self.config.model.detector.input_size

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> "Model":
        config, states, step, meta = read_checkpoint(path)
        network = FOMM(config.model)
        try:
            network.detector.load_state_dict(states["detector"])
            network.dense_motion.load_state_dict(states["dense_motion"])
            network.generator.load_state_dict(states["generator"])
            if network.background is not None:
                network.background.load_state_dict(states["background"])
        except (KeyError, RuntimeError) as exc:
            raise FommError(f"{path}: weights do not match the config they carry ({str(exc).splitlines()[0]})") from None
        return cls(network, config, meta, step, choose_device(device))

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
        images = frames_to_images(crops, self.device)
        out = self.network.detector(images)
        return _to_pixels(out.keypoints, out.scores, out.jacobians, out.covariances, boxes)


def detector_crops(frames: np.ndarray, boxes: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut uint8 frames ``(B, H, W, 3)`` (or one frame) to ``boxes`` ``(B, 4 or 5)`` (default: whole
    frames) and resize to ``size``; returns ``(crops (B, size, size, 3), boxes (B, 4))``."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    b, h, w = frames.shape[:3]
    if boxes is None:
        boxes = np.tile(np.array([0, 0, w, h], dtype=np.float64), (b, 1))
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[0] != b or boxes.shape[1] not in (4, 5):
        raise FommError(f"boxes must have shape ({b}, 4) or ({b}, 5), got {boxes.shape}")
    return np.stack([resize_frame(crop_frame(f, box), size) for f, box in zip(frames, boxes)]), boxes


def _to_pixels(keypoints: torch.Tensor, scores: torch.Tensor, jacobians: torch.Tensor,
               covariances: torch.Tensor, boxes: np.ndarray) -> Detections:
    """Normalised crop coordinates → pixels of the frame the boxes were cut from (boxes ``(B, 4)``,
    or ``(B, 5)`` for crops turned by an angle: see :func:`fomm_kp.video.crop_frame`)."""
    centre, linear = box_maps(boxes)  # normalised crop units → frame pixels
    linear = linear[:, None]  # (B, 1, 2, 2): one map per frame, for all K keypoints
    kp = keypoints.float().cpu().numpy().astype(np.float64)
    px = centre[:, None, :] + (linear @ kp[..., None])[..., 0]
    jac = linear @ jacobians.float().cpu().numpy() @ np.linalg.inv(linear)
    cov = linear @ covariances.float().cpu().numpy() @ np.swapaxes(linear, -1, -2)
    return Detections(px.astype(np.float32), scores.float().cpu().numpy().astype(np.float32),
                      jac.astype(np.float32), cov.astype(np.float32))
