"""Self-supervised FOMM training on one clip: ``Trainer.step()`` and ``Trainer.fit()``.

Progress is reported through a callback (the CLI draws the bar); the library only logs.
Checkpoints are written atomically and carry the config, optimizer state, step and where the model
looks, so training resumes exactly where it stopped. The loss terms are
:func:`fomm_kp.training.losses.objective`; the loop is :class:`fomm_kp.training.loop.Loop`.
"""

from __future__ import annotations

import contextlib
import gc
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
from fomm_kp.training.distributed import Ranks, agree, local_batch_size, wrap
from fomm_kp.training.loop import Loop, deferred_interrupt, optimise, optimise_on_device
from fomm_kp.training.losses import VGG19Perceptual, objective, on_subject_share
from fomm_kp.training.streams import warp_generators
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
    """Owns model, optimizer and pair sampler; ``step()`` runs one optimisation step.

    Under DDP (``ranks`` of several processes, process group joined: :mod:`fomm_kp.training.distributed`)
    each rank steps on its share of the global batch and only rank 0 writes. On a GPU the model is
    channels-last, the training frames stay on the GPU and a step never waits for the host.
    """

    def __init__(
        self, model: FOMM, config: Config, pairs: FramePairs | ClipPairs, device: torch.device,
        out_dir: Path, meta: dict[str, Any] | None = None, start_step: int = 0,
        optimizer_state: dict | None = None, ranks: Ranks = Ranks(),
    ) -> None:
        on_gpu = device.type == "cuda"
        self.model = model.to(device, memory_format=torch.channels_last) if on_gpu else model.to(device)
        self.config = config
        self.pairs = pairs.to(device) if on_gpu else pairs
        self.device = device
        self.out_dir = Path(out_dir)
        self.meta = dict(meta or {})
        self.step_count = start_step
        self.ranks = ranks
        self.local_batch = local_batch_size(config.train.batch_size, ranks)
        self.forward = wrap(self.model, ranks, device)  # the model, or the model under DDP
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate, betas=(0.5, 0.999),
                                          fused=True if on_gpu else None)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
        loss = config.loss
        self.perceptual = VGG19Perceptual(loss.perceptual_weights).to(device) if loss.perceptual > 0 else None
        self.last_losses: dict[str, Any] = {}
        self._fixed_pair: Pair | None = None

    def _images(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else images

    def step(self) -> dict[str, Any]:
        """One optimisation step on this process's share of a fresh batch; returns the loss terms
        (floats on CPUs, device tensors on GPUs: :class:`~fomm_kp.training.loop.Loop` reads them back)."""
        self.model.train()
        first, seed = self.ranks.rank * self.local_batch, self.config.train.seed
        pair = self.pairs.sample(self.local_batch, self.step_count, first)
        source, driving = self._images(pair.source), self._images(pair.driving)
        masks = None if pair.masks is None else pair.masks.to(self.device, non_blocking=True)
        warps = warp_generators(seed, self.step_count, range(first, first + self.local_batch))
        with autocast_context(self.device, self.config.train.mixed_precision):
            out = self.forward(source, driving)
            terms = objective(self.model, out, source, driving, self.config, warps, self.perceptual, masks)
        if self.device.type == "cpu":
            self.last_losses = optimise(self.optimizer, terms, self.step_count)
            if masks is not None:  # a diagnostic, not a loss: where the driving frames' keypoints sit
                self.last_losses["on_subject"] = on_subject_share(out.kp_driving.keypoints, masks[len(masks) // 2:])
        else:  # GPUs: nothing read back here (the on-subject diagnostic would be a read per step)
            self.last_losses = optimise_on_device(self.optimizer, terms)
        self.step_count += 1
        return self.last_losses

    def fit(self, steps: int, minutes: float = 0.0, progress: Progress | None = None) -> FOMM:
        """Train until ``steps`` total steps or ``minutes`` of wall time, whichever comes first.

        Writes ``checkpoint.pt`` every ``checkpoint_every`` steps and at the end, and
        ``preview.png`` every ``preview_every`` steps (rank 0 only). Ctrl-C finishes the step in
        hand, writes a checkpoint and raises :class:`TrainingInterrupted`.
        """
        train = self.config.train
        sync_every = 1 if self.device.type == "cpu" else max(1, min(train.log_every or 50, 50))
        loop = Loop(steps, minutes, train.log_every, "training", progress if self.ranks.writer else None, sync_every)
        try:
            with deferred_interrupt() as interrupted:
                result = loop.run(lambda _: self.step(), self.step_count, self._after_step, interrupted, self._agree)
        finally:
            # Drop the DDP wrapper while the process group lives: freed after the group is left, its
            # reducer would free the group while holding the GIL, and gloo's threads can then deadlock.
            self.forward = self.model
            if self.ranks.distributed:
                gc.collect()  # the wrapper may sit in a reference cycle
        if result.interrupted:
            checkpoint = self.out_dir / "checkpoint.pt"
            if self.ranks.writer:
                self.save(checkpoint)
            raise TrainingInterrupted(self.step_count, checkpoint)
        log.info("trained to step %d", self.step_count)
        return self.model

    def _agree(self, last: bool, stop: bool) -> tuple[bool, bool]:
        """Whether this was the last step, and whether to stop now: rank 0's decision on every rank."""
        last, stop = agree(self.ranks, self.device, last, stop)
        return last, stop

    def _after_step(self, step: int, last: bool) -> tuple[Path, ...]:
        """Previews and checkpoints due after ``step`` (rank 0 only); returns the files written."""
        train = self.config.train
        written: list[Path] = []
        if not self.ranks.writer:
            return ()
        if train.preview_every > 0 and (step % train.preview_every == 0 or last):
            written.append(self.write_preview(self.out_dir / "preview.png"))
            self.write_animation_preview(self.out_dir / "animation.png")
        if last or (train.checkpoint_every > 0 and step % train.checkpoint_every == 0):
            written.append(self.save(self.out_dir / "checkpoint.pt"))
        return tuple(written)

    def save(self, path: Path) -> Path:
        state = {name: part.state_dict() for name, part in self.model.parts().items() if part is not None}
        state["optimizer"] = self.optimizer.state_dict()
        meta = dict(self.meta, losses={name: float(value) for name, value in self.last_losses.items()})
        return save_checkpoint(path, self.config, state, self.step_count, meta)

    @torch.no_grad()
    def write_preview(self, path: Path) -> Path:
        """PNG rows of source | driving | warped source | reconstruction | keypoints on driving (with
        foreground masks, the driving frame is dimmed where it matches the static scene, so keypoints
        off the subject stand out)."""
        if self._fixed_pair is None:  # the first pairs of step 0 (drawing them changes no training draw)
            self._fixed_pair = self.pairs.sample(4)
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
        frames = self.pairs.frames.cpu().numpy()
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
