"""The detector network of a checkpoint: a teacher's keypoint detector or a distilled student.

:func:`load_detector` gives the network alone (:class:`~fomm_kp.models.KeypointNetwork`: images →
:class:`~fomm_kp.models.KeypointOutput`), in eval mode, with what its checkpoint says about it; the
ONNX export, the PyTorch backend and distillation start from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from fomm_kp.checkpoint import Checkpoint, load_weights, read_checkpoint
from fomm_kp.config import Config
from fomm_kp.crops import CropSettings
from fomm_kp.models import KeypointDetector, KeypointNetwork
from fomm_kp.models.student import StudentConfig, StudentDetector
from fomm_kp.settings import from_data

__all__ = ["LoadedDetector", "load_detector", "detector_network"]


@dataclass(frozen=True)
class LoadedDetector:
    """A detector network in eval mode with what its checkpoint says about it.

    ``config`` is the teacher's full :class:`~fomm_kp.config.Config` (its data/localisation settings
    drive tracking), ``crop`` where the model looks, ``meta`` the rest of the checkpoint metadata.
    """

    network: KeypointNetwork
    config: Config
    crop: CropSettings
    meta: dict[str, Any]
    kind: str  # "teacher" or "student"
    source: str

    @property
    def input_size(self) -> int:
        return self.network.config.input_size

    @property
    def num_keypoints(self) -> int:
        return self.network.config.num_keypoints


def detector_network(checkpoint: Checkpoint, source: object) -> KeypointNetwork:
    """The detector network of a checkpoint already read, with its weights (``source`` names it in errors)."""
    if checkpoint.kind == "student":
        config = from_data(StudentConfig, checkpoint.meta.get("student_config", {}), f"{source} (student config)")
        network: KeypointNetwork = StudentDetector(config)
        load_weights({"student": network}, checkpoint.state_dicts, source)
    else:
        network = KeypointDetector(checkpoint.config.model.detector, checkpoint.config.model.num_channels)
        load_weights({"detector": network}, checkpoint.state_dicts, source)
    return network


def load_detector(checkpoint: str | os.PathLike | Checkpoint, device: str | torch.device = "cpu",
                  source: str | os.PathLike | None = None) -> LoadedDetector:
    """The detector of a teacher checkpoint (``fomm-kp train``) or of a student (``fomm-kp distill``):
    a path, or a :class:`~fomm_kp.checkpoint.Checkpoint` already read (then ``source`` names it)."""
    if not isinstance(checkpoint, Checkpoint):
        source, checkpoint = checkpoint, read_checkpoint(checkpoint)
    network = detector_network(checkpoint, source).to(device).eval()
    return LoadedDetector(network, checkpoint.config, checkpoint.crop, checkpoint.meta, checkpoint.kind, str(source))
