"""Self-supervised FOMM training on one clip: ``Trainer.step()`` and ``Trainer.fit()``.

Progress is reported through a callback (the CLI draws the bar); the library only logs.
Checkpoints are written atomically and carry the config, optimizer state and step, so training
resumes exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from fomm_kp.checkpoint import save_checkpoint
from fomm_kp.config import Config
from fomm_kp.training.dataset import FramePairs
from fomm_kp.geometry import to_pixels
from fomm_kp.training.losses import (
    VGG19Perceptual, equivariance_losses, motion_weights, reconstruction_loss, rotation_equivariance_loss,
    separation_loss,
)
from fomm_kp.models import FOMM
from fomm_kp.viz import draw_keypoints, image_row

__all__ = ["Trainer", "TrainProgress", "TrainingInterrupted", "autocast_context"]

log = logging.getLogger(__name__)


@dataclass
class TrainProgress:
    """What a progress callback receives after each step."""

    step: int
    total_steps: int
    elapsed: float  # seconds in this run
    time_limit: float  # seconds, 0 = none
    losses: dict[str, float]
    preview: Path | None = None
    checkpoint: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :meth:`Trainer.fit`: the step in hand was finished and a checkpoint written."""

    def __init__(self, step: int, checkpoint: Path) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint saved to {checkpoint}")
        self.step = step
        self.checkpoint = checkpoint


@contextlib.contextmanager
def _deferred_interrupt():
    """Within the block, a first Ctrl-C only sets a flag (checked between steps); a second one
    interrupts at once. Yields a function that says whether Ctrl-C was pressed."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed.is_set
        return

    def handler(signum, frame) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()
        log.warning("Ctrl-C: finishing this step and saving a checkpoint (press again to stop at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield pressed.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def autocast_context(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU (when the CPU supports it), fp16 on CUDA, nothing otherwise."""
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if device.type == "cpu" and _cpu_has_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX")) and _avx512_bf16()
    except AttributeError:  # older torch
        return False


def _avx512_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


class Trainer:
    """Owns model, optimizer and pair sampler; ``step()`` runs one optimisation step."""

    def __init__(
        self, model: FOMM, config: Config, pairs: FramePairs, device: torch.device,
        out_dir: Path, meta: dict[str, Any] | None = None, start_step: int = 0,
        optimizer_state: dict | None = None,
    ) -> None:
        self.model = model.to(device)
        self.config = config
        self.pairs = pairs
        self.device = device
        self.out_dir = Path(out_dir)
        self.meta = dict(meta or {})
        self.step_count = start_step
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate, betas=(0.5, 0.999))
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
        self.generator = torch.Generator().manual_seed(config.train.seed + start_step)
        loss = config.loss
        self.perceptual = VGG19Perceptual(loss.perceptual_weights).to(device) if loss.perceptual > 0 else None
        self.last_losses: dict[str, float] = {}
        self._fixed_pair: tuple[torch.Tensor, torch.Tensor] | None = None

    def step(self) -> dict[str, float]:
        """One optimisation step on a fresh batch of pairs; returns the loss terms."""
        cfg = self.config
        self.model.train()
        source, driving = self.pairs.sample(cfg.train.batch_size)
        source, driving = source.to(self.device), driving.to(self.device)
        with autocast_context(self.device, cfg.train.mixed_precision):
            out = self.model(source, driving)
            weights = motion_weights(source, driving, cfg.loss.motion_weight)
            terms: dict[str, torch.Tensor] = {
                "reconstruction": reconstruction_loss(
                    out.prediction.float(), driving, weights, cfg.loss.scales, cfg.loss.l1, cfg.loss.ssim
                )
            }
            if self.perceptual is not None:
                terms["perceptual"] = cfg.loss.perceptual * self.perceptual(out.prediction.float(), driving)
            if cfg.loss.equivariance_value > 0 or cfg.loss.equivariance_jacobian > 0:
                value, jacobian = equivariance_losses(self.model.detector, driving, out.kp_driving, self.generator)
                terms["equivariance"] = cfg.loss.equivariance_value * value
                if cfg.model.detector.estimate_jacobian:
                    terms["equivariance_jacobian"] = cfg.loss.equivariance_jacobian * jacobian
            if cfg.data.any_orientation == "on" and cfg.loss.rotation_equivariance > 0:
                terms["rotation_equivariance"] = cfg.loss.rotation_equivariance * rotation_equivariance_loss(
                    self.model.detector, driving, out.kp_driving.keypoints, self.generator
                )
            if cfg.loss.separation > 0:
                points = torch.cat([out.kp_source.keypoints, out.kp_driving.keypoints]).float()
                terms["separation"] = cfg.loss.separation * separation_loss(points, cfg.loss.separation_sigma)
            if out.background is not None and cfg.loss.background_prior > 0:
                eye = torch.eye(2, 3, device=self.device)
                terms["background"] = cfg.loss.background_prior * (out.background - eye).abs().mean()
        total = sum(terms.values())
        if not torch.isfinite(total):
            raise FloatingPointError(f"loss became {total.item()} at step {self.step_count}: {terms}")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.step_count += 1
        self.last_losses = {name: float(value.detach()) for name, value in terms.items()}
        self.last_losses["total"] = float(total.detach())
        return self.last_losses

    def fit(
        self, steps: int, minutes: float = 0.0, callback: Callable[[TrainProgress], None] | None = None,
    ) -> FOMM:
        """Train until ``steps`` total steps or ``minutes`` of wall time, whichever comes first.

        Writes ``checkpoint.pt`` every ``checkpoint_every`` steps and at the end, and
        ``preview.png`` every ``preview_every`` steps. Ctrl-C finishes the step in hand, writes a
        checkpoint and raises :class:`TrainingInterrupted`.
        """
        with _deferred_interrupt() as interrupted:
            self._fit(steps, minutes, callback, interrupted)
        log.info("trained to step %d", self.step_count)
        return self.model

    def _fit(self, steps: int, minutes: float, callback: Callable[[TrainProgress], None] | None,
             interrupted: Callable[[], bool]) -> None:
        cfg = self.config.train
        start = time.monotonic()
        limit = 60.0 * minutes if minutes > 0 else 0.0
        ema: dict[str, float] = {}
        while self.step_count < steps:
            if interrupted():
                raise TrainingInterrupted(self.step_count, self.save(self.out_dir / "checkpoint.pt"))
            losses = self.step()
            ema = {k: v if k not in ema else 0.9 * ema[k] + 0.1 * v for k, v in losses.items()}
            elapsed = time.monotonic() - start
            done = self.step_count >= steps or (limit > 0 and elapsed >= limit)
            preview = checkpoint = None
            if cfg.preview_every > 0 and (self.step_count % cfg.preview_every == 0 or done):
                preview = self.write_preview(self.out_dir / "preview.png")
                self.write_animation_preview(self.out_dir / "animation.png")
            if done or (cfg.checkpoint_every > 0 and self.step_count % cfg.checkpoint_every == 0):
                checkpoint = self.save(self.out_dir / "checkpoint.pt")
            if self.step_count % max(1, cfg.log_every) == 0 or done:
                log.info("step %d (%.0f s): %s", self.step_count, elapsed, {k: round(v, 4) for k, v in ema.items()})
            if callback is not None:
                callback(TrainProgress(self.step_count, steps, elapsed, limit, dict(ema), preview, checkpoint))
            if done:
                break

    def save(self, path: Path) -> Path:
        state = {
            "detector": self.model.detector.state_dict(),
            "dense_motion": self.model.dense_motion.state_dict(),
            "generator": self.model.generator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }
        if self.model.background is not None:
            state["background"] = self.model.background.state_dict()
        meta = dict(self.meta, losses=self.last_losses)
        return save_checkpoint(path, self.config, state, self.step_count, meta)

    @torch.no_grad()
    def write_preview(self, path: Path) -> Path:
        """PNG rows of source | driving | warped source | reconstruction | keypoints on driving."""
        import imageio.v3 as iio

        from fomm_kp.files import atomic_write

        if self._fixed_pair is None:
            state = self.pairs.rng.bit_generator.state
            self._fixed_pair = self.pairs.sample(4)
            self.pairs.rng.bit_generator.state = state  # previews must not change the training draws
        source, driving = (t.to(self.device) for t in self._fixed_pair)
        self.model.eval()
        out = self.model(source, driving)
        self.model.train()

        def to_uint8(images: torch.Tensor) -> list[np.ndarray]:
            return [(img.permute(1, 2, 0).float().cpu().numpy() * 255).clip(0, 255).astype(np.uint8) for img in images]

        size = source.shape[-1]
        rows = []
        src_imgs, drv_imgs = to_uint8(source), to_uint8(driving)
        for i, (s, d, w, p) in enumerate(zip(src_imgs, drv_imgs, to_uint8(out.deformed), to_uint8(out.prediction))):
            kp_s = to_pixels(out.kp_source.keypoints[i], size, size).cpu().numpy()
            kp_d = to_pixels(out.kp_driving.keypoints[i], size, size).cpu().numpy()
            rows.append(image_row([draw_keypoints(s, kp_s), d, w, p, draw_keypoints(d, kp_d)]))
        grid = np.concatenate(rows, axis=0)
        return atomic_write(path, lambda tmp: iio.imwrite(tmp, grid, extension=".png"))

    @torch.no_grad()
    def write_animation_preview(self, path: Path) -> Path:
        """PNG: the first training frame animated by five others (:func:`fomm_kp.animate.animation_grid`)."""
        import imageio.v3 as iio

        from fomm_kp.animation.render import animation_grid
        from fomm_kp.files import atomic_write

        frames = self.pairs.frames.numpy()
        picks = np.linspace(0, len(frames) - 1, 6).round().astype(int)
        self.model.eval()
        grid = animation_grid(self.model, frames[picks[0]], frames[picks[1:]])
        self.model.train()
        return atomic_write(path, lambda tmp: iio.imwrite(tmp, grid, extension=".png"))
