"""The one surface of a trained detector, whatever network or runtime runs it.

:class:`Detector` is what tracking, evaluation and scoring use: ``detect`` takes uint8 frames at the
API boundary (optionally crop boxes) and returns :class:`Detections` in pixels of the frames the
boxes were cut from. A teacher on PyTorch (:class:`~fomm_kp.runtime.model.Model`) and a detector on
any backend (:class:`~fomm_kp.runtime.backends.DetectorModel`: torch, ONNX Runtime, TensorRT) both
offer it, so each is used wherever the other is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from fomm_kp.config import Config
from fomm_kp.crops import CropSettings, box_maps
from fomm_kp.errors import FommError
from fomm_kp.video import crop_frame, resize_frame

__all__ = ["Detections", "Detector", "device_type", "check_device", "choose_device", "detector_crops", "detections_in_frame"]

log = logging.getLogger(__name__)


def device_type(device: str | torch.device | None = None) -> str:
    """``cpu`` or ``cuda``: the kind of device :func:`choose_device` would choose (nothing is logged)."""
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return torch.device(device).type
    except RuntimeError:
        raise FommError(f"device must be cpu, cuda or cuda:N, got '{device}'") from None


def check_device(device: str | torch.device | None = None) -> str:
    """The kind of the requested device (``cpu`` or ``cuda``), refusing what this machine cannot run
    on (another kind, no GPU, a GPU index past the last); nothing is logged."""
    kind = device_type(device)
    if kind not in ("cpu", "cuda"):
        raise FommError(f"device must be cpu, cuda or cuda:N, got '{device}'")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise FommError(f"device {device} was requested but torch sees no GPU")
        index = None if device is None or device == "auto" else torch.device(device).index
        if index is not None and index >= torch.cuda.device_count():
            raise FommError(f"device {device}: torch sees {torch.cuda.device_count()} GPU(s)")
    return kind


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """The device, chosen once at the API boundary: the requested one, else CUDA when present, else CPU."""
    kind = check_device(device)
    device = torch.device(kind if device is None or device == "auto" else device)
    log.info("device: %s", device)
    return device


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


class Detector(Protocol):
    """A trained detector ready to track: its training config, where it looks and what it returns."""

    config: Config  # the teacher's config (its data settings drive localisation)
    crop: CropSettings  # where the model looks in each frame
    meta: dict[str, Any]  # the rest of the checkpoint's metadata (video, kind, ...)

    @property
    def num_keypoints(self) -> int: ...

    @property
    def detector_size(self) -> int:
        """Side of the square crops the network reads."""

    @property
    def device(self) -> torch.device: ...

    def detect(self, frames: np.ndarray, boxes: np.ndarray | None = None) -> Detections:
        """Keypoints of uint8 frames ``(B, H, W, 3)``, each cut to its box ``(B, 4 or 5)`` first (default:
        whole frames), in pixels of the uncropped frames."""

    def detect_resized(self, crops: np.ndarray, boxes: np.ndarray) -> Detections:
        """Keypoints of crops ``(B, S, S, 3)`` already at ``detector_size``, mapped back through ``boxes``."""


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


def detections_in_frame(keypoints: np.ndarray | torch.Tensor, scores: np.ndarray | torch.Tensor,
                        jacobians: np.ndarray | torch.Tensor, covariances: np.ndarray | torch.Tensor,
                        boxes: np.ndarray) -> Detections:
    """Detector outputs in normalised crop coordinates → :class:`Detections` in pixels of the frame the
    boxes ``(B, 4)`` (or ``(B, 5)``, turned: see :func:`fomm_kp.video.crop_frame`) were cut from."""
    keypoints, scores, jacobians, covariances = (
        t.float().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=np.float32)
        for t in (keypoints, scores, jacobians, covariances))
    centre, linear = box_maps(np.asarray(boxes, dtype=np.float64))  # normalised crop units → frame pixels
    linear = linear[:, None]  # (B, 1, 2, 2): one map per frame, for all K keypoints
    px = centre[:, None, :] + (linear @ keypoints.astype(np.float64)[..., None])[..., 0]
    jac = linear @ jacobians @ np.linalg.inv(linear)
    cov = linear @ covariances @ np.swapaxes(linear, -1, -2)
    return Detections(px.astype(np.float32), scores.astype(np.float32), jac.astype(np.float32), cov.astype(np.float32))
