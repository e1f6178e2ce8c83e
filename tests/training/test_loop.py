"""The optimisation loop's GPU mode: losses stay on the device between reads every ``sync_every``
steps (checked here with CPU tensors), non-finite losses are still caught, decisions can be shared."""

from __future__ import annotations

import math

import pytest
import torch

from fomm_kp.progress import Update
from fomm_kp.training.loop import Loop, optimise_on_device


def test_losses_are_read_back_only_every_sync_every_steps() -> None:
    seen: list[Update] = []
    values = iter([4.0, 2.0, 1.0, 3.0, 5.0])
    result = Loop(5, sync_every=2, progress=seen.append).run(lambda step: {"total": torch.tensor(next(values))})
    assert result.step == 5 and [u.done for u in seen] == [1, 2, 3, 4, 5]
    # Step 1 shows nothing yet; steps 2-3 the average read at step 2; 4 and the last step fresh reads.
    assert [dict(u.losses) for u in seen][0] == {}
    assert seen[1].losses == seen[2].losses == {"total": pytest.approx(0.9 * 4 + 0.1 * 2)}
    assert seen[4].losses["total"] == pytest.approx(result.losses.values["total"])
    assert isinstance(result.losses.values["total"], float)


def test_a_non_finite_loss_on_the_device_is_caught_at_the_next_read() -> None:
    values = iter([1.0, math.nan, 1.0, 1.0])
    with pytest.raises(FloatingPointError, match="non-finite by step 4"):
        Loop(10, sync_every=4).run(lambda step: {"total": torch.tensor(next(values))})


def test_optimise_on_device_returns_tensors_and_steps() -> None:
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = torch.optim.SGD([weight], lr=0.5)
    terms = optimise_on_device(optimizer, {"a": (weight * 2).sum()})
    assert set(terms) == {"a", "total"} and terms["total"].requires_grad is False
    assert weight.item() == pytest.approx(0.0)


def test_agree_overrides_the_local_decision() -> None:
    """Several processes stop at rank 0's decision: here rank 0 says stop after step 2."""
    decisions = []

    def agree(last: bool, stop: bool) -> tuple[bool, bool]:
        decisions.append((last, stop))
        return len(decisions) == 2, False

    result = Loop(10).run(lambda step: {"total": 1.0}, agree=agree)
    assert result.step == 2 and decisions == [(False, False), (False, False)]
