"""Distil a trained detector (the teacher) into a small student on frames of the same video.

    result = distill("mouse.mp4", "runs/mouse/checkpoint.pt", "student.pt")
    result.report["heldout"]["px256"]["mean"]      # student–teacher disagreement, 256-px crop pixels

The student (:class:`~fomm_kp.models.student.StudentDetector`) learns to reproduce the teacher's
keypoints, jacobians, covariances, scores and (pooled) heatmaps on crops taken exactly as tracking
takes them (the teacher's localisation, box side and input size), plus augmented copies (rotation,
scale, shift, brightness/contrast, noise) whose targets are the teacher's outputs on the augmented
crop itself. The teacher's outputs are computed into a pool (the augmented part redrawn every
``refresh_every`` steps when set), so the student's steps cost only the student. Frames in contiguous blocks spread over the video (with guard frames on both sides)
are held out; the report gives the disagreement on them in pixels of a 256-px crop and of the
original frame.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from fomm_kp.checkpoint import save_checkpoint
from fomm_kp.config import Config, to_dict
from fomm_kp.errors import FommError
from fomm_kp.runtime.model import choose_device
from fomm_kp.models.student import (
    StudentConfig,
    StudentDetector,
    count_flops,
    count_parameters,
    student_config_for,
)
from fomm_kp.video import crop_frame, iter_frames, probe, resize_frame

__all__ = ["DistillConfig", "DistillProgress", "DistillResult", "TrackingCrops", "tracking_crops",
           "heldout_split", "distill", "compare_detectors"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig:
    """Settings of :func:`distill` (stored in the student checkpoint's metadata)."""

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


@dataclass
class DistillProgress:
    """What a progress callback receives: the phase, its progress and the latest losses."""

    phase: str  # "frames", "teacher", "training", "evaluating"
    done: int
    total: int
    losses: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class TrackingCrops:
    """Crops as tracking takes them: ``crops`` uint8 ``(N, S, S, 3)``, ``frame_indices`` ``(N,)``,
    ``boxes`` ``(N, 4)`` in original pixels, and the same crops at other sides in ``resized``
    (``{side: (N, side, side, 3)}``)."""

    crops: np.ndarray
    frame_indices: np.ndarray
    boxes: np.ndarray
    resized: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)


def tracking_crops(
    video: str | os.PathLike, config: Config, meta: dict[str, Any], size: int,
    max_frames: int = 3000, extra_sizes: tuple[int, ...] = (),
) -> TrackingCrops:
    """Read up to ``max_frames`` evenly strided frames and crop them as :func:`fomm_kp.api.track`
    does for a model with this ``config``/``meta`` (same localisation, box side or fixed crop),
    resized (PIL, as tracking) to ``size`` and to each of ``extra_sizes``; frames where the subject
    is not found are skipped."""
    from fomm_kp.api import subject_boxes

    info = probe(video)
    localized = bool(meta.get("localized"))
    crop = meta.get("fixed_crop") or None
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, localize="on" if localized else "off"))
    side = int(round(meta["box_side"])) if localized and "box_side" in meta else None
    located = subject_boxes(video, config, crop, side=side, align=bool(meta.get("aligned", False)))
    whole = np.array([0, 0, info.width, info.height], dtype=np.float64)
    box_of: dict[int, np.ndarray | None] = {}
    if located is not None:
        box_of = {int(i): (b if f else None) for i, b, f in zip(*located)}
    stride = max(1, int(math.ceil(info.num_frames / max_frames)))
    sizes = (size, *[s for s in extra_sizes if s != size])
    crops: dict[int, list[np.ndarray]] = {s: [] for s in sizes}
    indices, boxes = [], []
    for index, frame in iter_frames(video, stride=stride):
        box = box_of.get(index) if located is not None else whole
        if box is None:
            continue
        cut = crop_frame(frame, box)
        for s in sizes:
            crops[s].append(resize_frame(cut, s))
        indices.append(index)
        boxes.append(np.asarray(box, dtype=np.float64))
    if len(indices) < 10:
        raise FommError(f"only {len(indices)} usable frame(s) in {video}: distillation needs at least 10")
    log.info("read %d crops of %s (stride %d, %s px)", len(indices), video, stride, "/".join(map(str, sizes)))
    stacked = {s: np.stack(v) for s, v in crops.items()}
    return TrackingCrops(stacked.pop(size), np.asarray(indices, dtype=np.int64), np.stack(boxes), stacked)


def heldout_split(count: int, fraction: float, blocks: int, guard: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, heldout)`` sample indices: ``blocks`` contiguous held-out blocks spread evenly over
    ``range(count)`` covering ``fraction`` of it, with ``guard`` samples on each side used by neither."""
    if not 0 < fraction < 1:
        raise FommError(f"holdout fraction must be in (0, 1), got {fraction}")
    blocks = max(1, min(blocks, count // (4 + 2 * guard)))  # short clips: fewer blocks, so some frames train
    length = max(1, int(round(count * fraction / blocks)))
    heldout = np.zeros(count, dtype=bool)
    excluded = np.zeros(count, dtype=bool)
    for i in range(blocks):
        start = int(round((i + 0.5) * count / blocks - length / 2))
        start = min(max(start, 0), count - length)
        heldout[start:start + length] = True
        excluded[max(0, start - guard):start + length + guard] = True
    train = np.flatnonzero(~excluded)
    if len(train) < 2:
        raise FommError(f"{count} frames are too few to hold out {fraction:.0%} and train on the rest")
    return train, np.flatnonzero(heldout)


def _augment(work: torch.Tensor, sizes: tuple[int, ...], config: DistillConfig,
             generator: torch.Generator) -> list[torch.Tensor]:
    """Random affine + photometric augmentation of ``(B, 3, W, W)`` images in [0, 1], resized
    (antialiased) to each of ``sizes`` and quantised to 8 bits like real frames: one uint8
    ``(B, size, size, 3)`` per size, all views of the same augmented image."""
    b = work.shape[0]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator)

    angle = torch.deg2rad(uniform(-config.rotation, config.rotation, b))
    scale = uniform(1 - config.scale, 1 + config.scale, b)
    shift = uniform(-2 * config.shift, 2 * config.shift, b, 2)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if config.flip else torch.ones(b)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(work.shape), align_corners=False)
    images = F.grid_sample(work, grid, mode="bilinear", padding_mode="border", align_corners=False)
    j = config.color_jitter
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    contrast = uniform(1 - j, 1 + j, b, 1, 1, 1)
    brightness = uniform(-j / 2, j / 2, b, 1, 1, 1)
    gain = uniform(1 - j / 3, 1 + j / 3, b, 3, 1, 1)
    images = (images - mean) * contrast * gain + mean + brightness
    images = images + uniform(0, config.noise, b, 1, 1, 1) * torch.randn(images.shape, generator=generator)
    views = []
    for size in sizes:
        view = images if images.shape[-1] == size else F.interpolate(
            images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        views.append((view.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous())
    return views


@dataclass
class _Targets:
    keypoints: torch.Tensor  # (P, K, 2)
    jacobians: torch.Tensor  # (P, K, 2, 2)
    covariances: torch.Tensor  # (P, K, 2, 2)
    scores: torch.Tensor  # (P, K)
    heatmaps: torch.Tensor  # (P, K, h, w) float16, teacher heatmaps sum-pooled to the student's head grid


def _images(crops: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    if isinstance(crops, np.ndarray):
        crops = torch.from_numpy(crops)
    return crops.to(device).permute(0, 3, 1, 2).float() / 255


@torch.no_grad()
def _teacher_targets(teacher: torch.nn.Module, crops: torch.Tensor, pool_to: int, device: torch.device,
                     progress: Callable[[int, int], None] | None, batch_size: int = 64) -> _Targets:
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in ("keypoints", "jacobians", "covariances", "scores", "heatmaps")}
    for start in range(0, len(crops), batch_size):
        out = teacher(_images(crops[start:start + batch_size], device))
        factor = out.heatmaps.shape[-1] // pool_to
        pooled = F.avg_pool2d(out.heatmaps, factor) * factor**2 if factor > 1 else out.heatmaps
        parts["keypoints"].append(out.keypoints.float().cpu())
        parts["jacobians"].append(out.jacobians.float().cpu())
        parts["covariances"].append(out.covariances.float().cpu())
        parts["scores"].append(out.scores.float().cpu())
        parts["heatmaps"].append(pooled.half().cpu())
        if progress is not None:
            progress(min(start + batch_size, len(crops)), len(crops))
    return _Targets(**{name: torch.cat(values) for name, values in parts.items()})


def _losses(out: Any, target: _Targets, config: DistillConfig, upscale: int) -> dict[str, torch.Tensor]:
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


@torch.no_grad()
def compare_detectors(
    teacher: torch.nn.Module, student: torch.nn.Module, teacher_crops: np.ndarray, student_crops: np.ndarray,
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
        t = teacher(_images(teacher_crops[start:stop], device))
        s = student(_images(student_crops[start:stop], device))
        diffs.append((s.keypoints - t.keypoints).float().cpu())
        jac.append((s.jacobians - t.jacobians).abs().mean(dim=(2, 3)).float().cpu())
        cov.append((s.covariances - t.covariances).abs().mean(dim=(2, 3)).float().cpu())
        score.append((s.scores - t.scores).abs().float().cpu())
    delta = torch.cat(diffs).numpy()  # (N, K, 2) normalised
    px256 = np.linalg.norm(delta * 128.0, axis=-1)  # a 256-px crop spans 2 normalised units
    sides = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=-1)[:, None, :]  # (N, 1, 2)
    px_frame = np.linalg.norm(delta * sides / 2, axis=-1)

    def summary(values: np.ndarray) -> dict[str, float]:
        return {"mean": float(values.mean()), "median": float(np.median(values)),
                "p95": float(np.percentile(values, 95)), "max": float(values.max())}

    return {
        "frames": int(len(student_crops)),
        "px256": summary(px256),
        "px_frame": summary(px_frame),
        "px256_per_keypoint": [float(v) for v in px256.mean(axis=0)],
        "jacobian_abs": float(torch.cat(jac).mean()),
        "covariance_abs_px256": float(torch.cat(cov).mean() * 128.0**2),
        "score_abs": float(torch.cat(score).mean()),
    }


@dataclass
class DistillResult:
    """The trained student (on the torch backend), the checkpoint written and the report."""

    model: Any  # fomm_kp.backends.DetectorModel
    checkpoint: Path
    report: dict[str, Any]


def distill(
    video: str | os.PathLike,
    teacher: str | os.PathLike,
    out: str | os.PathLike,
    config: DistillConfig | None = None,
    student_config: StudentConfig | None = None,
    device: str | torch.device | None = None,
    progress: Callable[[DistillProgress], None] | None = None,
) -> DistillResult:
    """Train a student detector to reproduce ``teacher`` (a ``fomm-kp train`` checkpoint) on frames of
    ``video``; write the student checkpoint to ``out`` (weights_only-loadable, with the teacher's
    config and tracking metadata) and return it with the held-out disagreement report."""
    from fomm_kp.runtime.backends import DetectorModel, TorchBackend
    from fomm_kp.deploy.export import load_detector

    config = config or DistillConfig()
    if config.steps < 1 and config.minutes <= 0:
        raise FommError("distillation needs steps >= 1 or minutes > 0")
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    device = choose_device(device)
    loaded = load_detector(teacher, device)
    if loaded.kind != "teacher":
        raise FommError(f"{teacher} is a {loaded.kind} checkpoint: distil from a trained teacher")
    teacher_net = loaded.module
    teacher_size = loaded.input_size
    student_config = student_config or student_config_for(loaded.config.model.detector)
    if student_config.num_keypoints != loaded.num_keypoints:
        raise FommError(f"the student has {student_config.num_keypoints} keypoints, the teacher {loaded.num_keypoints}")
    if student_config.heatmap_size != teacher_size:
        raise FommError(f"the student's heatmap_size ({student_config.heatmap_size}) must be the teacher's "
                        f"heatmap side ({teacher_size})")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    size = student_config.input_size
    started = time.monotonic()

    def report_phase(phase: str) -> Callable[[int, int], None]:
        def call(done: int, total: int) -> None:
            if progress is not None:
                progress(DistillProgress(phase, done, total))
        return call

    report_phase("frames")(0, 1)
    work_size = max(size, teacher_size) + max(size, teacher_size) // 2  # room for augmentation
    data = tracking_crops(video, loaded.config, loaded.meta, size, config.max_frames, (teacher_size, work_size))
    train_idx, heldout_idx = heldout_split(len(data.crops), config.holdout_fraction, config.holdout_blocks,
                                           config.guard_frames)
    log.info("%d training and %d held-out crops (%.1f s)", len(train_idx), len(heldout_idx), time.monotonic() - started)
    teacher_view = data.resized.get(teacher_size, data.crops)
    head = size // student_config.head_stride
    upscale = student_config.heatmap_size // head
    # The pool: plain crops (the tracking distribution) with their teacher targets, computed once,
    # and augmented copies, redrawn every ``refresh_every`` steps. Student and teacher each get
    # their own input size of the same (augmented) crop.
    plain_student = torch.from_numpy(data.crops[train_idx])
    plain_targets = _teacher_targets(teacher_net, torch.from_numpy(teacher_view[train_idx]), head, device,
                                     report_phase("teacher"))
    work = torch.from_numpy(data.resized[work_size][train_idx])

    def augmented_pool() -> tuple[torch.Tensor, _Targets | None]:
        if config.augmented_copies < 1:
            return plain_student[:0], None
        students, teachers = [], []
        for _ in range(config.augmented_copies):
            for start in range(0, len(work), 256):
                chunk = work[start:start + 256].permute(0, 3, 1, 2).float() / 255
                views = _augment(chunk, (size, teacher_size), config, generator)
                students.append(views[0])
                teachers.append(views[-1])
        targets = _teacher_targets(teacher_net, torch.cat(teachers), head, device, report_phase("teacher"))
        return torch.cat(students), targets

    def merged(extra: tuple[torch.Tensor, _Targets | None]) -> tuple[torch.Tensor, _Targets]:
        crops, targets = extra
        if targets is None:
            return plain_student, plain_targets
        return torch.cat([plain_student, crops]), _Targets(*(
            torch.cat([getattr(plain_targets, f.name), getattr(targets, f.name)]) for f in dataclasses.fields(_Targets)))

    crops, targets = merged(augmented_pool())
    log.info("teacher targets for %d crops (%.1f s)", len(crops), time.monotonic() - started)

    student = StudentDetector(student_config).to(device)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = max(1, min(200, config.steps // 20))

    def learning_rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, config.steps - warmup)))) * 0.99 + 0.01

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate)
    train_started = time.monotonic()
    step, running, first = 0, {}, {}
    while step < config.steps:
        if config.minutes > 0 and time.monotonic() - train_started > 60 * config.minutes:
            log.info("time limit reached at step %d", step)
            break
        if config.refresh_every > 0 and step > 0 and step % config.refresh_every == 0:
            crops, targets = merged(augmented_pool())
            log.info("step %d: new augmented copies drawn", step)
        student.train()
        batch = torch.randint(0, len(crops), (config.batch_size,), generator=generator)
        prediction = student(_images(crops[batch], device))
        target = _Targets(*(getattr(targets, f.name)[batch].to(device) for f in dataclasses.fields(_Targets)))
        terms = _losses(prediction, target, config, upscale)
        total = sum(terms.values())
        if not torch.isfinite(total):
            raise FloatingPointError(f"distillation loss became {total.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        values = {name: float(v.detach()) for name, v in terms.items()} | {"total": float(total.detach())}
        running = {k: 0.9 * running.get(k, v) + 0.1 * v for k, v in values.items()}
        if step <= 10:  # the starting level of each loss term, for the report
            first = {k: first.get(k, 0.0) + v / 10 for k, v in values.items()}
        if progress is not None:
            progress(DistillProgress("training", step, config.steps, dict(running)))
        if step % 100 == 0:
            log.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in running.items()))
    train_seconds = time.monotonic() - train_started
    student.eval()

    report_phase("evaluating")(0, 1)

    def disagreement(indices: np.ndarray) -> dict[str, Any]:
        return compare_detectors(teacher_net, student, teacher_view[indices], data.crops[indices],
                                 data.boxes[indices], device)

    heldout = disagreement(heldout_idx)
    seen = disagreement(train_idx[:: max(1, len(train_idx) // max(1, len(heldout_idx)))])
    teacher_flops = count_flops(teacher_net, teacher_size)
    student_flops = count_flops(student, size)
    report = {
        "video": str(video),
        "teacher": str(teacher),
        "heldout": heldout,
        "training_frames": seen,
        "steps": step,
        "losses_first_10_steps": first,
        "losses_final": running,
        "train_seconds": round(train_seconds, 1),
        "pool_size": int(len(crops)),
        "teacher_gflops": teacher_flops / 1e9,
        "student_gflops": student_flops / 1e9,
        "flops_ratio": student_flops / max(1, teacher_flops),
        "teacher_parameters": count_parameters(teacher_net),
        "student_parameters": count_parameters(student),
        "device": str(device),
    }
    log.info("held-out disagreement: %.2f px mean, %.2f px p95 (256-px crop); %.2f px mean in the frame",
             heldout["px256"]["mean"], heldout["px256"]["p95"], heldout["px_frame"]["mean"])
    if report["flops_ratio"] > 0.1:
        log.warning("the student costs %.0f%% of the teacher's FLOPs (> 10%%)", 100 * report["flops_ratio"])
    meta = {key: value for key, value in loaded.meta.items() if key not in ("kind", "student_config", "distill")}
    meta.update({
        "kind": "student",
        "student_config": to_dict(student_config),
        "distill": {"config": to_dict(config), "report": report},
    })
    path = save_checkpoint(out, loaded.config, {"student": student.state_dict()}, step, meta)
    log.info("wrote %s", path)
    model = DetectorModel(TorchBackend(student, size, student_config.num_keypoints, device), loaded.config, meta, "student")
    return DistillResult(model, Path(path), report)
