"""The one optimisation loop, shared by FOMM training and distillation.

:class:`Loop` runs steps until a step count or a time limit (whichever comes first), smooths the loss
terms, logs now and then and reports :class:`~fomm_kp.progress.Update`\\ s; :func:`optimise` is one
step of an optimiser on a dict of loss terms (a non-finite total is an error, not a silent skip;
:func:`optimise_on_device` leaves that check to the loop, so that GPUs need not wait for the host);
:func:`deferred_interrupt` turns a first Ctrl-C into a flag checked between steps.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from fomm_kp.progress import Progress, report

__all__ = ["Loop", "LoopResult", "SmoothedLosses", "optimise", "optimise_on_device", "deferred_interrupt"]

log = logging.getLogger(__name__)


def optimise(optimizer: torch.optim.Optimizer, terms: dict[str, torch.Tensor], step: int) -> dict[str, float]:
    """Backpropagate the sum of ``terms`` and step ``optimizer``; returns the terms and ``total`` as floats."""
    total = sum(terms.values())
    if not torch.isfinite(total):
        raise FloatingPointError(f"loss became {total.item()} at step {step}: {terms}")
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {name: float(value.detach()) for name, value in terms.items()} | {"total": float(total.detach())}


def optimise_on_device(optimizer: torch.optim.Optimizer, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """:func:`optimise` without reading anything back to the host (GPUs: no wait for the device);
    returns the terms and ``total`` as detached tensors. :class:`Loop` checks them for non-finite
    values every ``sync_every`` steps."""
    total = sum(terms.values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {name: value.detach() for name, value in terms.items()} | {"total": total.detach()}


@dataclass
class SmoothedLosses:
    """Exponential moving averages of loss terms (weight 0.1 for the newest), and the mean of the first
    ``first_steps`` steps (the starting level, for reports). Terms may be device tensors between two
    calls of :meth:`to_host`."""

    first_steps: int = 10
    values: dict[str, Any] = field(default_factory=dict)
    first: dict[str, Any] = field(default_factory=dict)
    count: int = 0

    def add(self, losses: Mapping[str, Any]) -> None:
        self.values = {k: v if k not in self.values else 0.9 * self.values[k] + 0.1 * v for k, v in losses.items()}
        self.count += 1
        if self.count <= self.first_steps:
            self.first = {k: self.first.get(k, 0.0) + v / self.first_steps for k, v in losses.items()}

    def to_host(self, step: int) -> dict[str, float]:
        """The averages as floats (one wait for the device); a non-finite one is an error."""
        self.values = {k: float(v) for k, v in self.values.items()}
        self.first = {k: float(v) for k, v in self.first.items()}
        if not all(math.isfinite(v) for v in self.values.values()):
            raise FloatingPointError(f"loss became non-finite by step {step}: {self.values}")
        return dict(self.values)


@dataclass(frozen=True)
class LoopResult:
    """Where a loop stopped: the step reached, the smoothed losses, seconds spent, and whether Ctrl-C stopped it."""

    step: int
    losses: SmoothedLosses
    seconds: float
    interrupted: bool = False


@dataclass(frozen=True)
class Loop:
    """Steps until ``steps`` steps in all or ``minutes`` of wall time (> 0), whichever comes first.

    ``progress`` hears after every step (under a time limit with an estimate of the last step);
    the smoothed losses are logged every ``log_every`` steps and at the end. Losses are read back
    to the host, and the time limit and Ctrl-C looked at, every ``sync_every`` steps (1 on CPUs;
    more on GPUs, which then never wait for the host in between).
    """

    steps: int
    minutes: float = 0.0
    log_every: int = 100
    stage: str = "training"
    progress: Progress | None = None
    sync_every: int = 1

    def _total(self, step: int, elapsed: float, limit: float) -> int:
        if limit <= 0 or step == 0:
            return self.steps
        return min(self.steps, max(step, int(step * limit / max(elapsed, 1e-6))))

    def run(self, step: Callable[[int], Mapping[str, Any]], start: int = 0,
            after_step: Callable[[int, bool], tuple[Path, ...]] | None = None,
            interrupted: Callable[[], bool] | None = None,
            agree: Callable[[bool, bool], tuple[bool, bool]] | None = None) -> LoopResult:
        """Call ``step(number)`` (the step about to run, from ``start``) until done; ``after_step(step,
        last)`` runs after each (it returns the files it wrote). ``interrupted()`` is asked between
        steps: when it says so the loop stops and says why. ``agree(last, stop)`` makes several
        processes take the same decisions (DDP: rank 0's)."""
        limit = 60.0 * self.minutes if self.minutes > 0 else 0.0
        began = time.monotonic()
        smoothed, current, shown = SmoothedLosses(), start, {}
        if interrupted is not None and interrupted():
            return LoopResult(current, smoothed, 0.0, interrupted=True)
        while current < self.steps:
            smoothed.add(step(current))
            current += 1
            elapsed = time.monotonic() - began
            last, stop = current >= self.steps, False
            if last or current % self.sync_every == 0:
                shown = smoothed.to_host(current)
                last = last or (limit > 0 and elapsed >= limit)
                stop = interrupted is not None and interrupted()
                if agree is not None:
                    last, stop = agree(last, stop)
            if stop:
                return LoopResult(current, smoothed, time.monotonic() - began, interrupted=True)
            files = after_step(current, last) if after_step is not None else ()
            if current % max(1, self.log_every) == 0 or last:
                log.info("step %d (%.0f s): %s", current, elapsed, {k: round(v, 4) for k, v in shown.items()})
            report(self.progress, current, self._total(current, elapsed, limit), self.stage, losses=shown, files=files)
            if last:
                break
        return LoopResult(current, smoothed, time.monotonic() - began)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Within the block, a first Ctrl-C only sets a flag (checked between steps); a second one
    interrupts at once. Yields a function that says whether Ctrl-C was pressed."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed.is_set
        return

    def handler(signum: int, frame: object) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()
        log.warning("Ctrl-C: finishing this step and saving a checkpoint (press again to stop at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield pressed.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
