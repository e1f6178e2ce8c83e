"""Distil a trained detector (the teacher) into a small student on frames of the same video.

    result = distill("mouse.mp4", "runs/mouse/checkpoint.pt", "student.pt")
    result.report["heldout"]["px256"]["mean"]      # student–teacher disagreement, 256-px crop pixels

The student (:class:`~fomm_kp.models.student.StudentDetector`) learns to reproduce the teacher's
keypoints, jacobians, covariances, scores and (pooled) heatmaps on crops taken exactly as tracking
takes them (the teacher's localisation, box side and input size), plus augmented copies (rotation,
scale, shift, brightness/contrast, noise) whose targets are the teacher's outputs on the augmented
crop itself (:mod:`fomm_kp.deploy.targets`). Training runs on the same loop as FOMM training
(:class:`fomm_kp.training.loop.Loop`). Frames in contiguous blocks spread over the video (with guard
frames on both sides) are held out; the report gives the disagreement on them in pixels of a 256-px
crop and of the original frame.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from fomm_kp.checkpoint import save_checkpoint
from fomm_kp.config import to_dict
from fomm_kp.deploy.distill_config import DistillConfig
from fomm_kp.deploy.samples import TrackingCrops, clips_heldout_split, join_clips, tracking_crops
from fomm_kp.deploy.targets import TargetPool, Teacher, compare_detectors, distill_losses
from fomm_kp.errors import FommError
from fomm_kp.models.student import StudentConfig, StudentDetector, count_flops, count_parameters, student_config_for
from fomm_kp.progress import Progress, report
from fomm_kp.runtime.backends import DetectorModel, TorchBackend
from fomm_kp.runtime.detector import choose_device
from fomm_kp.runtime.networks import LoadedDetector, load_detector
from fomm_kp.training.clips import training_clips
from fomm_kp.training.loop import Loop, LoopResult, optimise

__all__ = ["DistillConfig", "DistillResult", "distill"]

log = logging.getLogger(__name__)


@dataclass
class DistillResult:
    """The trained student (on the torch backend), the checkpoint written and the report."""

    model: DetectorModel
    checkpoint: Path
    report: dict[str, Any]


def _student_config(teacher: LoadedDetector, student_config: StudentConfig | None, source: object) -> StudentConfig:
    if teacher.kind != "teacher":
        raise FommError(f"{source} is a {teacher.kind} checkpoint: distil from a trained teacher")
    student_config = student_config or student_config_for(teacher.config.model.detector)
    if student_config.num_keypoints != teacher.num_keypoints:
        raise FommError(f"the student has {student_config.num_keypoints} keypoints, the teacher {teacher.num_keypoints}")
    if student_config.heatmap_size != teacher.input_size:
        raise FommError(f"the student's heatmap_size ({student_config.heatmap_size}) must be the teacher's "
                        f"heatmap side ({teacher.input_size})")
    return student_config


def _schedule(config: DistillConfig) -> Callable[[int], float]:
    """Learning-rate factor per step: a linear warm-up, then a cosine decay to 1%."""
    warmup = max(1, min(200, config.steps // 20))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, config.steps - warmup)))) * 0.99 + 0.01

    return factor


def _train_student(pool: TargetPool, student_config: StudentConfig, config: DistillConfig, device: torch.device,
                   progress: Progress | None) -> tuple[StudentDetector, LoopResult]:
    student = StudentDetector(student_config).to(device)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    upscale = student_config.heatmap_size // (student_config.input_size // student_config.head_stride)

    def step(number: int) -> dict[str, float]:
        if config.refresh_every > 0 and number > 0 and number % config.refresh_every == 0:
            pool.refresh()
            log.info("step %d: new augmented copies drawn", number)
        student.train()
        images, targets = pool.sample(config.batch_size, pool.teacher.device)
        losses = optimise(optimizer, distill_losses(student(images), targets, config, upscale), number)
        scheduler.step()
        return losses

    result = Loop(config.steps, config.minutes, 100, "distilling", progress).run(step)
    student.eval()
    return student, result


def _report(teacher: Teacher, student: StudentDetector, data: TrackingCrops, split: tuple[np.ndarray, np.ndarray],
            run: LoopResult) -> dict[str, Any]:
    """Disagreement on the held-out frames and on as many training frames, and the costs of both networks."""
    train_idx, heldout_idx = split
    teacher_view = data.resized.get(teacher.input_size, data.crops)

    def disagreement(indices: np.ndarray) -> dict[str, Any]:
        return compare_detectors(teacher.network, student, teacher_view[indices], data.crops[indices],
                                 data.boxes[indices], teacher.device)

    teacher_flops, student_flops = count_flops(teacher.network, teacher.input_size), count_flops(student, student.config.input_size)
    return {
        "heldout": disagreement(heldout_idx),
        "training_frames": disagreement(train_idx[:: max(1, len(train_idx) // max(1, len(heldout_idx)))]),
        "steps": run.step,
        "losses_first_10_steps": run.losses.first,
        "losses_final": run.losses.values,
        "train_seconds": round(run.seconds, 1),
        "teacher_gflops": teacher_flops / 1e9,
        "student_gflops": student_flops / 1e9,
        "flops_ratio": student_flops / max(1, teacher_flops),
        "teacher_parameters": count_parameters(teacher.network),
        "student_parameters": count_parameters(student),
    }


def distill(
    video: str | os.PathLike | Sequence[str | os.PathLike],
    teacher: str | os.PathLike,
    out: str | os.PathLike,
    config: DistillConfig | None = None,
    student_config: StudentConfig | None = None,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> DistillResult:
    """Train a student detector to reproduce ``teacher`` (a ``fomm-kp train`` checkpoint) on frames of
    ``video`` (one path, several, or a folder of videos: each clip holds out its own share); write the student checkpoint to ``out`` (weights_only-loadable, with the teacher's
    config and crop settings) and return it with the held-out disagreement report."""
    config = config or DistillConfig()
    if config.steps < 1 and config.minutes <= 0:
        raise FommError("distillation needs steps >= 1 or minutes > 0")
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    device = choose_device(device)
    loaded = load_detector(teacher, device)
    student_config = _student_config(loaded, student_config, teacher)
    torch.manual_seed(config.seed)
    started = time.monotonic()
    report(progress, 0, 1, "reading frames")
    size, teacher_size = student_config.input_size, loaded.input_size
    work_size = max(size, teacher_size) + max(size, teacher_size) // 2  # room for augmentation
    clips = [tracking_crops(clip, loaded.crop, loaded.config.data, size, config.max_frames, (teacher_size, work_size))
             for clip in training_clips(video)]
    data = join_clips(clips)
    split = clips_heldout_split([len(c.crops) for c in clips], config.holdout_fraction, config.holdout_blocks,
                                config.guard_frames)
    log.info("%d training and %d held-out crops (%.1f s)", len(split[0]), len(split[1]), time.monotonic() - started)
    coach = Teacher(loaded.network, size // student_config.head_stride, device)
    pool = TargetPool(coach, data, split[0], config, torch.Generator().manual_seed(config.seed), progress)
    log.info("teacher targets for %d crops (%.1f s)", len(pool.current), time.monotonic() - started)
    student, run = _train_student(pool, student_config, config, device, progress)
    report(progress, 0, 1, "evaluating")
    summary = {"video": str(video) if isinstance(video, (str, os.PathLike)) else [str(v) for v in video], "teacher": str(teacher), **_report(coach, student, data, split, run),
               "pool_size": int(len(pool.current)), "device": str(device)}
    held = summary["heldout"]
    log.info("held-out disagreement: %.2f px mean, %.2f px p95 (256-px crop); %.2f px mean in the frame",
             held["px256"]["mean"], held["px256"]["p95"], held["px_frame"]["mean"])
    if summary["flops_ratio"] > 0.1:
        log.warning("the student costs %.0f%% of the teacher's FLOPs (> 10%%)", 100 * summary["flops_ratio"])
    meta = {key: value for key, value in loaded.meta.items() if key not in ("kind", "student_config", "distill")}
    meta.update(kind="student", student_config=to_dict(student_config), distill={"config": to_dict(config), "report": summary})
    path = save_checkpoint(out, loaded.config, {"student": student.state_dict()}, run.step, meta)
    log.info("wrote %s", path)
    model = DetectorModel(TorchBackend(student, device), loaded.config, meta, "student")
    return DistillResult(model, Path(path), summary)
