"""Training on several processes with DistributedDataParallel (``torchrun --nproc_per_node N``).

torchrun tells each process its place (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); :func:`session`
joins the process group (NCCL on GPUs, one GPU per process; gloo on CPUs) and leaves it at the end.
The global batch is split evenly across the ranks (:func:`local_batch_size`); each rank draws its
samples from their own streams (:mod:`fomm_kp.training.streams`), so the split does not change
what is drawn. Batch normalisation normalises over the global batch, not each rank's share:
``nn.SyncBatchNorm`` on GPUs, :class:`GlobalBatchNorm` on CPUs (SyncBatchNorm needs a GPU). With
both, N processes at global batch B compute the same step as one process at batch B. Only rank 0
writes checkpoints and previews and reports progress; the ranks stop together, at the step where
rank 0 decides to (time limit, Ctrl-C) (:func:`agree`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn

from fomm_kp.errors import FommError

__all__ = ["Ranks", "ranks_from_environment", "session", "local_batch_size", "GlobalBatchNorm", "wrap", "agree"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ranks:
    """This process's place among ``world_size`` training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def writer(self) -> bool:
        """Whether this process writes checkpoints, previews and reports progress (rank 0)."""
        return self.rank == 0


def ranks_from_environment() -> Ranks:
    """The ranks torchrun (or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) gave this process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise FommError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (set by torchrun)") from None
    if world < 1 or not 0 <= rank < world:
        raise FommError(f"RANK {rank} and WORLD_SIZE {world} do not fit together")
    return Ranks(rank, world, local)


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[tuple[Ranks, torch.device]]:
    """Join the process group torchrun set up (nothing for one process); yields the ranks and this
    process's device (``cuda:LOCAL_RANK`` on GPUs). Leaves the group at the end."""
    ranks = ranks_from_environment()
    if not ranks.distributed:
        yield ranks, device
        return
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world_size)
    log.info("DDP: rank %d of %d (%s, %s)", ranks.rank, ranks.world_size, backend, device)
    try:
        yield ranks, device
    finally:
        gc.collect()  # free DDP wrappers first: freed after the group, one can deadlock gloo's threads
        dist.destroy_process_group()


def local_batch_size(batch_size: int, ranks: Ranks) -> int:
    """Each rank's share of the global batch (it must split evenly)."""
    if batch_size % ranks.world_size:
        raise FommError(f"train.batch_size {batch_size} does not split evenly across {ranks.world_size} processes")
    return batch_size // ranks.world_size


class _SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over all ranks; its gradient is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = grad.clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are those of the global batch across all ranks
    (sums all-reduced, gradients flowing through them); as ``BatchNorm2d`` otherwise. For gloo on
    CPUs, where ``nn.SyncBatchNorm`` is not available."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        values = x.float()
        count = values.numel() // values.shape[1] * dist.get_world_size()
        mean = _SumOverRanks.apply(values.sum(dim=(0, 2, 3))) / count
        centred = values - mean.view(1, -1, 1, 1)
        variance = _SumOverRanks.apply(centred.pow(2).sum(dim=(0, 2, 3))) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(variance.detach() * count / max(count - 1, 1), momentum)
        out = centred * torch.rsqrt(variance + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out.to(x.dtype)


def _global_batch_norm(module: nn.Module) -> nn.Module:
    """``module`` with every ``BatchNorm2d`` replaced by a :class:`GlobalBatchNorm` holding the same state."""
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, GlobalBatchNorm):
        replacement = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                      module.track_running_stats, device=module.running_mean.device)
        replacement.load_state_dict(module.state_dict())
        return replacement
    for name, child in module.named_children():
        module.add_module(name, _global_batch_norm(child))
    return module


def wrap(model: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """The module a training step calls: ``model`` itself for one process; under DDP, ``model`` with
    global batch statistics (changed in place, so its state dict keeps its keys), wrapped in
    ``DistributedDataParallel``."""
    if not ranks.distributed:
        return model
    if device.type == "cuda":
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if converted is not model:
            raise FommError("the model's top module must not be a batch norm")
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    _global_batch_norm(model)
    return nn.parallel.DistributedDataParallel(model)


def agree(ranks: Ranks, device: torch.device, *flags: bool) -> tuple[bool, ...]:
    """Rank 0's ``flags`` on every rank (one process: the flags as they are)."""
    if not ranks.distributed:
        return flags
    values = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=device)
    dist.broadcast(values, src=0)
    return tuple(bool(v) for v in values.tolist())
