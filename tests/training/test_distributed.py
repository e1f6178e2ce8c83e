"""Training on two processes (DistributedDataParallel, gloo on CPU) is training on one: at the same
global batch, the same parameters after 3 steps, also across a resume; only rank 0 writes.

The ranks are started as torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT set),
each in its own working folder, so that anything rank 1 wrote would show. ``fomm-kp train --ddp 2``
goes through torchrun itself.

Why float64: in float32 the two runs differ by rounding (sums over the batch in another order:
~1e-6 relative in the gradients), and Adam turns rounding noise into steps of about the learning
rate wherever the true gradient is zero or nearly so (biases of convolutions followed by batch
norm, the heatmap bias before its softmax): after 3 steps some parameters then differ by ~5e-4
however exact the distributed maths is. In float64 the same comparison isolates the maths (batch
split, batch statistics over the global batch, per-sample random streams, gradient averaging).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from fomm_kp.checkpoint import read_checkpoint
from fomm_kp.config import to_dict
from fomm_kp.errors import FommError
from fomm_kp.training.distributed import GlobalBatchNorm, Ranks, local_batch_size

from conftest import SyntheticClip, tiny_whole_frame

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5

# ``python FLOAT64 ARGS`` is ``fomm-kp ARGS`` computing in float64 (the models' casts to float32,
# there for bf16 autocast, keep float64).
FLOAT64 = """
import sys, torch
torch.set_default_dtype(torch.float64)
_float = torch.Tensor.float
torch.Tensor.float = lambda self, *args, **kwargs: self if self.dtype == torch.float64 else _float(self, *args, **kwargs)
from fomm_kp.cli import main
sys.argv[0] = "fomm-kp"
main()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, disc_clip: SyntheticClip) -> dict[str, Path]:
    """The float64 launcher, the tiny whole-frame config at global batch 4 (flips and colour jitter
    on, so that the per-sample random streams matter), and the one-process run of 3 steps."""
    folder = tmp_path_factory.mktemp("ddp")
    data = to_dict(tiny_whole_frame())
    data["train"].update(batch_size=4, mixed_precision=False, flip=True, color_jitter=0.2, preview_every=0)
    paths = {"config": folder / "tiny.yaml", "launcher": folder / "float64.py", "video": disc_clip.path}
    paths["config"].write_text(yaml.safe_dump(data))
    paths["launcher"].write_text(FLOAT64)
    [single] = launch(paths, ["--steps", "3"], [folder / "single"])
    assert single.returncode == 0, single.stderr
    paths["single"] = folder / "single" / "run" / "checkpoint.pt"
    return paths


def launch(paths: dict[str, Path], args: list[str], folders: list[Path]) -> list[subprocess.CompletedProcess]:
    """``fomm-kp train VIDEO --out run --config CONFIG ARGS`` in float64 as ranks 0..N-1 of one DDP
    run, rank i in ``folders[i]`` (one folder: an ordinary single-process run)."""
    port, processes = free_port(), []
    for rank, folder in enumerate(folders):
        folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
        if len(folders) > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(len(folders)), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
        command = [sys.executable, str(paths["launcher"]), "train", str(paths["video"]), "--out", "run",
                   "--config", str(paths["config"]), *args]
        if "--resume" in args:
            command.remove("--config")
            command.remove(str(paths["config"]))
        processes.append(subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    done = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=300)
            done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    finally:  # a rank that failed leaves the others waiting for it
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return done


def max_difference(a: Path, b: Path) -> float:
    """Largest absolute difference over every tensor of the networks (parameters and batch-norm statistics)."""
    first, second = read_checkpoint(a), read_checkpoint(b)
    assert first.step == second.step
    worst = 0.0
    for part in ("detector", "dense_motion", "generator"):
        x, y = first.state_dicts[part], second.state_dicts[part]
        assert x.keys() == y.keys()
        for key in x:
            assert x[key].dtype == y[key].dtype
            if x[key].is_floating_point():
                assert x[key].dtype == torch.float64
                worst = max(worst, (x[key] - y[key]).abs().max().item())
            else:
                assert torch.equal(x[key], y[key]), key
    return worst


@pytest.mark.slow
def test_two_gloo_processes_train_like_one_and_only_rank_0_writes(setup, tmp_path: Path) -> None:
    ranks = launch(setup, ["--steps", "3"], [tmp_path / "rank0", tmp_path / "rank1"])
    for rank in ranks:
        assert rank.returncode == 0, rank.stderr
    assert max_difference(tmp_path / "rank0" / "run" / "checkpoint.pt", setup["single"]) <= TOLERANCE
    assert list((tmp_path / "rank1").iterdir()) == []  # rank 1 wrote nothing ...
    assert ranks[1].stderr == "" and ranks[1].stdout == ""  # ... and logged and drew nothing
    assert "trained 3 steps" in ranks[0].stderr and "DDP: rank 0 of 2 (gloo, cpu)" in ranks[0].stderr


@pytest.mark.slow
def test_resuming_on_two_processes_continues_the_same_run(setup, tmp_path: Path) -> None:
    """1 step, then resumed to 3 (both ranks in one folder, as under torchrun: every rank reads the
    checkpoint rank 0 wrote) = 3 steps in one go on one process."""
    for args in (["--steps", "1"], ["--steps", "3", "--resume"]):
        for rank in launch(setup, args, [tmp_path, tmp_path]):
            assert rank.returncode == 0, rank.stderr
    assert max_difference(tmp_path / "run" / "checkpoint.pt", setup["single"]) <= TOLERANCE


@pytest.mark.slow
def test_ddp_option_trains_under_torchrun(disc_clip: SyntheticClip, tmp_path: Path) -> None:
    """``fomm-kp train --ddp 2``: torchrun starts two gloo processes; one checkpoint, from rank 0."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    config = tmp_path / "tiny.yaml"
    data = to_dict(tiny_whole_frame())
    data["train"].update(preview_every=0)
    config.write_text(yaml.safe_dump(data))
    done = subprocess.run([sys.executable, "-m", "fomm_kp", "train", str(disc_clip.path), "--out", str(tmp_path / "run"),
                           "--config", str(config), "--steps", "2", "--ddp", "2"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "--nproc_per_node=2" in done.stderr and "DDP: rank 0 of 2 (gloo, cpu)" in done.stderr
    assert done.stderr.count("trained 2 steps") == 1
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt").step == 2
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt"]


def test_local_batches_split_evenly_and_global_batch_norm_keeps_its_state() -> None:
    assert local_batch_size(8, Ranks(1, 2, 1)) == 4
    with pytest.raises(FommError, match="does not split evenly across 3 processes"):
        local_batch_size(8, Ranks(0, 3, 0))
    norm = torch.nn.BatchNorm2d(3)
    norm.running_mean.fill_(0.5)
    converted = GlobalBatchNorm(3)
    converted.load_state_dict(norm.state_dict())
    x = torch.randn(4, 3, 5, 5)
    # Without a process group it is a BatchNorm2d: same output, same running statistics.
    assert torch.equal(converted(x), norm(x))
    assert torch.equal(converted.running_mean, norm.running_mean)
