"""Self-supervised FOMM training on one clip: ``Trainer.step()`` and ``Trainer.fit()``.

Progress is reported through a callback (the CLI draws the bar); the library only logs.
Checkpoints are written atomically and carry the config, optimizer state, step and where the model
looks, so training resumes exactly where it stopped. The loss terms are
:func:`fomm_kp.training.losses.objective`; the loop is :class:`fomm_kp.training.loop.Loop`.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch

from fomm_kp.animation.transfer import animation_grid
from fomm_kp.checkpoint import save_checkpoint
from fomm_kp.config import Config
from fomm_kp.files import atomic_write
from fomm_kp.geometry import to_pixels
from fomm_kp.images import images_to_frames
from fomm_kp.models import FOMM
from fomm_kp.models.keypoint_detector import resize_images
from fomm_kp.progress import Progress
from fomm_kp.training.clips import ClipPairs
from fomm_kp.training.dataset import FramePairs, Pair
from fomm_kp.training.loop import Loop, deferred_interrupt, optimise
from fomm_kp.training.losses import VGG19Perceptual, objective, on_subject_share
from fomm_kp.video import resize_frame
from fomm_kp.viz import draw_keypoints, image_row

__all__ = ["Trainer", "TrainingInterrupted", "autocast_context"]

log = logging.getLogger(__name__)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :meth:`Trainer.fit`: the step in hand was finished and a checkpoint written."""

    def __init__(self, step: int, checkpoint: Path) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint saved to {checkpoint}")
        self.step = step
        self.checkpoint = checkpoint


class Trainer:
    """Owns model, optimizer and pair sampler; ``step()`` runs one optimisation step."""

    def __init__(
        self, model: FOMM, config: Config, pairs: FramePairs | ClipPairs, device: torch.device,
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
        self._fixed_pair: Pair | None = None

    def step(self) -> dict[str, float]:
        """One optimisation step on a fresh batch of pairs; returns the loss terms."""
        self.model.train()
        pair = self.pairs.sample(self.config.train.batch_size)
        source, driving = pair.source.to(self.device), pair.driving.to(self.device)
        masks = None if pair.masks is None else pair.masks.to(self.device)
        with autocast_context(self.device, self.config.train.mixed_precision):
            out = self.model(source, driving)
            terms = objective(self.model, out, source, driving, self.config, self.generator, self.perceptual, masks)
        self.last_losses = optimise(self.optimizer, terms, self.step_count)
        if masks is not None:  # a diagnostic, not a loss: where the driving frames' keypoints sit
            self.last_losses["on_subject"] = on_subject_share(out.kp_driving.keypoints, masks[len(masks) // 2:])
        self.step_count += 1
        return self.last_losses

    def fit(self, steps: int, minutes: float = 0.0, progress: Progress | None = None) -> FOMM:
        """Train until ``steps`` total steps or ``minutes`` of wall time, whichever comes first.

        Writes ``checkpoint.pt`` every ``checkpoint_every`` steps and at the end, and
        ``preview.png`` every ``preview_every`` steps. Ctrl-C finishes the step in hand, writes a
        checkpoint and raises :class:`TrainingInterrupted`.
        """
        loop = Loop(steps, minutes, self.config.train.log_every, "training", progress)
        with deferred_interrupt() as interrupted:
            result = loop.run(lambda _: self.step(), self.step_count, self._after_step, interrupted)
        if result.interrupted:
            raise TrainingInterrupted(self.step_count, self.save(self.out_dir / "checkpoint.pt"))
        log.info("trained to step %d", self.step_count)
        return self.model

    def _after_step(self, step: int, last: bool) -> tuple[Path, ...]:
        """Previews and checkpoints due after ``step``; returns the files written."""
        train = self.config.train
        written = []
        if train.preview_every > 0 and (step % train.preview_every == 0 or last):
            written.append(self.write_preview(self.out_dir / "preview.png"))
            self.write_animation_preview(self.out_dir / "animation.png")
        if last or (train.checkpoint_every > 0 and step % train.checkpoint_every == 0):
            written.append(self.save(self.out_dir / "checkpoint.pt"))
        return tuple(written)

    def save(self, path: Path) -> Path:
        state = {name: part.state_dict() for name, part in self.model.parts().items() if part is not None}
        state["optimizer"] = self.optimizer.state_dict()
        meta = dict(self.meta, losses=self.last_losses)
        return save_checkpoint(path, self.config, state, self.step_count, meta)

    @torch.no_grad()
    def write_preview(self, path: Path) -> Path:
        """PNG rows of source | driving | warped source | reconstruction | keypoints on driving (with
        foreground masks, the driving frame is dimmed where it matches the static scene, so keypoints
        off the subject stand out)."""
        if self._fixed_pair is None:
            state = self.pairs.rng.bit_generator.state
            self._fixed_pair = self.pairs.sample(4)
            self.pairs.rng.bit_generator.state = state  # previews must not change the training draws
        source, driving = (t.to(self.device) for t in self._fixed_pair[:2])
        self.model.eval()
        out = self.model(source, driving)
        self.model.train()
        size = self.config.model.image_size
        source, driving = (resize_images(x, size) for x in (source, driving))
        rows = []
        columns = zip(*(images_to_frames(images) for images in (source, driving, out.deformed, out.prediction)))
        masks = self._fixed_pair.masks
        for i, (s, d, w, p) in enumerate(columns):
            kp_s = to_pixels(out.kp_source.keypoints[i], size, size).cpu().numpy()
            kp_d = to_pixels(out.kp_driving.keypoints[i], size, size).cpu().numpy()
            shown = d if masks is None else _dim_outside(d, masks[len(masks) // 2 + i, 0].numpy())
            rows.append(image_row([draw_keypoints(s, kp_s), d, w, p, draw_keypoints(shown, kp_d)]))
        grid = np.concatenate(rows, axis=0)
        return atomic_write(path, lambda tmp: iio.imwrite(tmp, grid, extension=".png"))

    @torch.no_grad()
    def write_animation_preview(self, path: Path) -> Path:
        """PNG: the first training frame animated by five others (:func:`fomm_kp.animation.transfer.animation_grid`)."""
        frames = self.pairs.frames.numpy()
        picks = np.linspace(0, len(frames) - 1, 6).round().astype(int)
        frames = np.stack([resize_frame(frames[i], self.config.model.image_size) for i in picks])
        picks = np.arange(len(picks))
        self.model.eval()
        grid = animation_grid(self.model, frames[picks[0]], frames[picks[1:]])
        self.model.train()
        return atomic_write(path, lambda tmp: iio.imwrite(tmp, grid, extension=".png"))


def _dim_outside(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``frame`` uint8 ``(S, S, 3)`` at a third of its brightness where ``mask`` (any size) is 0."""
    mask = resize_frame((np.repeat(mask[:, :, None], 3, axis=2) * 255).astype(np.uint8), frame.shape[0]) > 127
    return np.where(mask, frame, frame // 3).astype(np.uint8)


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
