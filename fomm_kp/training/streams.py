"""Random numbers per training sample: each sample of each step draws from its own seeded stream.

Sample ``i`` of the (global) batch of step ``s`` draws its frame pair, augmentation and warps from
streams seeded by ``(seed, s, i)`` alone. So the draws do not depend on how the batch is split
across processes (DistributedDataParallel: rank r takes samples ``r·b .. r·b + b - 1``), and a run
resumed at step ``s`` draws exactly what an uninterrupted run would have drawn.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["data_streams", "warp_generators"]

_DATA, _WARP = 0, 1  # two independent children of each sample's seed


def _children(seed: int, step: int, index: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence([seed, step, index]).spawn(2)


def data_streams(seed: int, step: int, indices: Sequence[int]) -> list[np.random.Generator]:
    """NumPy generators of the samples ``indices`` of step ``step``: their frame pairs and augmentation."""
    return [np.random.default_rng(_children(seed, step, i)[_DATA]) for i in indices]


def warp_generators(seed: int, step: int, indices: Sequence[int]) -> list[torch.Generator]:
    """torch generators (CPU) of the same samples: their random equivariance warps."""
    generators = []
    for i in indices:
        state = _children(seed, step, i)[_WARP].generate_state(1, np.uint64)[0]
        generators.append(torch.Generator().manual_seed(int(state)))
    return generators
