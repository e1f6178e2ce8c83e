"""The teacher's side of distillation: its outputs as targets, the pool of crops the student learns
from, the distillation loss, and how far student and teacher disagree.

The teacher's outputs are computed into a pool once (the augmented part redrawn every
``refresh_every`` steps when set), so the student's steps cost only the student.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fomm_kp.deploy.distill_config import DistillConfig
from fomm_kp.deploy.samples import TrackingCrops, augment_crops
from fomm_kp.errors import FommError
from fomm_kp.images import frames_to_images
from fomm_kp.models import KeypointNetwork, KeypointOutput
from fomm_kp.progress import Progress, report

__all__ = ["TeacherTargets", "Teacher", "Pool", "TargetPool", "distill_losses", "compare_detectors"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherTargets:
    """The teacher's outputs on P crops: what the student must reproduce."""

    keypoints: torch.Tensor  # (P, K, 2)
    jacobians: torch.Tensor  # (P, K, 2, 2)
    covariances: torch.Tensor  # (P, K, 2, 2)
    scores: torch.Tensor  # (P, K)
    heatmaps: torch.Tensor  # (P, K, h, w) float16, teacher heatmaps sum-pooled to the student's head grid

    def select(self, index: torch.Tensor, device: torch.device | None = None) -> "TeacherTargets":
        return TeacherTargets(*(getattr(self, f.name)[index].to(device) for f in dataclasses.fields(self)))

    def __add__(self, other: "TeacherTargets") -> "TeacherTargets":
        return TeacherTargets(*(torch.cat([getattr(self, f.name), getattr(other, f.name)])
                                for f in dataclasses.fields(self)))


@dataclass(frozen=True)
class Teacher:
    """The teacher network on ``device``; its heatmaps are pooled to a ``head`` × ``head`` grid (the student's)."""

    network: KeypointNetwork
    head: int
    device: torch.device

    @property
    def input_size(self) -> int:
        return self.network.config.input_size

    @torch.no_grad()
    def targets(self, crops: torch.Tensor, progress: Progress | None = None, batch_size: int = 64) -> TeacherTargets:
        """Targets of uint8 crops ``(P, S, S, 3)`` at the teacher's input size."""
        parts: dict[str, list[torch.Tensor]] = {f.name: [] for f in dataclasses.fields(TeacherTargets)}
        for start in range(0, len(crops), batch_size):
            out = self.network(frames_to_images(crops[start:start + batch_size], self.device))
            factor = out.heatmaps.shape[-1] // self.head
            pooled = F.avg_pool2d(out.heatmaps, factor) * factor**2 if factor > 1 else out.heatmaps
            for name in ("keypoints", "jacobians", "covariances", "scores"):
                parts[name].append(getattr(out, name).float().cpu())
            parts["heatmaps"].append(pooled.half().cpu())
            report(progress, min(start + batch_size, len(crops)), len(crops), "teacher targets")
        return TeacherTargets(**{name: torch.cat(values) for name, values in parts.items()})


@dataclass(frozen=True)
class Pool:
    """Student crops, uint8 ``(P, S, S, 3)`` at the student's input size, with the teacher's targets."""

    crops: torch.Tensor
    targets: TeacherTargets

    def __add__(self, other: "Pool") -> "Pool":
        return Pool(torch.cat([self.crops, other.crops]), self.targets + other.targets)

    def __len__(self) -> int:
        return len(self.crops)


class TargetPool:
    """What the student learns from: the plain tracking crops ``data`` (rows ``indices``) with the
    teacher's targets, computed once, and ``config.augmented_copies`` augmented copies of each,
    redrawn by :meth:`refresh`. Student and teacher each get their own input size of the same crop."""

    def __init__(self, teacher: Teacher, data: TrackingCrops, indices: np.ndarray, config: DistillConfig,
                 generator: torch.Generator, progress: Progress | None = None) -> None:
        self.teacher, self.config, self.generator, self.progress = teacher, config, generator, progress
        teacher_view = data.resized.get(teacher.input_size, data.crops)
        self.plain = Pool(torch.from_numpy(data.crops[indices]),
                          teacher.targets(torch.from_numpy(teacher_view[indices]), progress))
        self.work = torch.from_numpy(data.resized[max(data.resized)][indices])  # larger crops: room to augment
        self.student_size = data.crops.shape[1]
        self.current = self.plain
        self.refresh()

    def refresh(self) -> None:
        """Draw new augmented copies (and their targets)."""
        if self.config.augmented_copies < 1:
            return
        students, teachers = [], []
        sizes = (self.student_size, self.teacher.input_size)
        for _ in range(self.config.augmented_copies):
            for start in range(0, len(self.work), 256):
                chunk = frames_to_images(self.work[start:start + 256])
                views = augment_crops(chunk, sizes, self.config, self.generator)
                students.append(views[0])
                teachers.append(views[-1])
        self.current = self.plain + Pool(torch.cat(students), self.teacher.targets(torch.cat(teachers), self.progress))

    def sample(self, batch_size: int, device: torch.device) -> tuple[torch.Tensor, TeacherTargets]:
        """A random batch: student images ``(B, 3, S, S)`` and their targets, on ``device``."""
        index = torch.randint(0, len(self.current), (batch_size,), generator=self.generator)
        return frames_to_images(self.current.crops[index], device), self.current.targets.select(index, device)


def distill_losses(out: KeypointOutput, target: TeacherTargets, config: DistillConfig, upscale: int,
                   ) -> dict[str, torch.Tensor]:
    """The weighted terms of the distillation loss: keypoints, jacobians, covariances, scores and the
    KL divergence of the heatmaps (the student's pooled by ``upscale`` to the teacher's targets)."""
    terms = {"keypoints": config.keypoint_weight * (out.keypoints - target.keypoints).abs().sum(-1).mean()}
    if config.jacobian_weight > 0:
        terms["jacobians"] = config.jacobian_weight * (out.jacobians - target.jacobians).abs().mean()
    if config.covariance_weight > 0:
        terms["covariances"] = config.covariance_weight * (out.covariances - target.covariances).abs().mean()
    if config.score_weight > 0:
        terms["scores"] = config.score_weight * (out.scores - target.scores).abs().mean()
    if config.heatmap_weight > 0:
        student = F.avg_pool2d(out.heatmaps, upscale) * upscale**2 if upscale > 1 else out.heatmaps
        teacher = target.heatmaps.float()
        kl = (teacher * (torch.log(teacher + 1e-8) - torch.log(student + 1e-8))).sum(dim=(2, 3))
        terms["heatmaps"] = config.heatmap_weight * kl.mean()
    return terms


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "p95": float(np.percentile(values, 95)), "max": float(values.max())}


@torch.no_grad()
def compare_detectors(
    teacher: KeypointNetwork, student: KeypointNetwork, teacher_crops: np.ndarray, student_crops: np.ndarray,
    boxes: np.ndarray, device: torch.device, batch_size: int = 128,
) -> dict[str, Any]:
    """Student–teacher disagreement on the same crops, uint8 ``(N, S, S, 3)`` at each one's input
    size, in pixels of a 256-px crop and of the original frame (``boxes`` ``(N, 4)``)."""
    if len(teacher_crops) != len(student_crops) or len(boxes) != len(student_crops):
        raise FommError("teacher crops, student crops and boxes must have the same length")
    teacher.eval(), student.eval()
    diffs, jac, cov, score = [], [], [], []
    for start in range(0, len(student_crops), batch_size):
        stop = start + batch_size
        t = teacher(frames_to_images(teacher_crops[start:stop], device))
        s = student(frames_to_images(student_crops[start:stop], device))
        diffs.append((s.keypoints - t.keypoints).float().cpu())
        jac.append((s.jacobians - t.jacobians).abs().mean(dim=(2, 3)).float().cpu())
        cov.append((s.covariances - t.covariances).abs().mean(dim=(2, 3)).float().cpu())
        score.append((s.scores - t.scores).abs().float().cpu())
    delta = torch.cat(diffs).numpy()  # (N, K, 2) normalised
    px256 = np.linalg.norm(delta * 128.0, axis=-1)  # a 256-px crop spans 2 normalised units
    sides = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=-1)[:, None, :]  # (N, 1, 2)
    px_frame = np.linalg.norm(delta * sides / 2, axis=-1)
    return {
        "frames": int(len(student_crops)),
        "px256": _summary(px256),
        "px_frame": _summary(px_frame),
        "px256_per_keypoint": [float(v) for v in px256.mean(axis=0)],
        "jacobian_abs": float(torch.cat(jac).mean()),
        "covariance_abs_px256": float(torch.cat(cov).mean() * 128.0**2),
        "score_abs": float(torch.cat(score).mean()),
    }
