"""Speed of the spine: training-step time and tracking frames/s at 64, 128 and 256 px, with FLOPs.

Model variants (``--variants``):

- ``cpu``: the built-in ``cpu`` config as shipped (the default): 64 px frames reconstructed,
  detector on 64 px, dense-motion network on 32 px, reduced widths.
- ``cpu128``: the built-in ``cpu128`` config: 128 px frames, detector and dense-motion network on
  64 px, the same widths (the CPU default until 2026-11-22).
- ``cpu256``: the same widths with 256 px frames and the detector and dense-motion network on
  128 px (the 256-px CPU variant; not a built-in config).
- ``gpu128``: the built-in ``gpu_default`` config (128 px frames and detector, dense motion on
  64 px, widths up to 512), the default where CUDA is present. Like ``gpu256`` it is only in the
  default set with ``--device cuda``.
- a YAML file (``docs/configs/keypoints10.yaml``): that config as it is.
- ``gpu256``: the built-in ``gpu`` config, the FOMM paper's vox-256 shapes (256 px frames,
  detector and dense motion on 64 px, widths up to 1024). Several seconds per sample on a CPU, so
  it is only in the default set with ``--device cuda``.

What is measured, per variant:

- training step: :meth:`fomm_kp.training.trainer.Trainer.step` at batch 8 (``--batch``) on synthetic
  frames (pair sampling, augmentation, forward, all losses including equivariance, backward, Adam),
  in fp32 and with mixed precision (bf16 autocast on CPUs with AVX-512 BF16/AMX, autocast on CUDA);
  median seconds per step over ``--steps`` timed steps after ``--warmup`` untimed ones;
- tracking: the keypoint detector alone (eval, no grad) on batches of 64 frames (``--track-batch``)
  already resized to its input size and on the device, in frames/s (fp32 and mixed precision);
- FLOPs, counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix
  products; element-wise ops, ``grid_sample`` and resizing are not counted): the detector per
  frame, and the whole training step (forward + backward) per training sample;
- parameters of the whole model and of the detector.

Prints a markdown table and writes JSON (``--out``). Example::

    python scripts/benchmark_speed.py --threads 2                 # CPU: cpu, cpu128, cpu256
    python scripts/benchmark_speed.py --device cuda               # + gpu256, on a GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from fomm_kp.config import Config, builtin_config, load_config
from fomm_kp.models import FOMM
from fomm_kp.training.dataset import FramePairs, TrainingFrames
from fomm_kp.training.trainer import Trainer, autocast_context

VARIANTS = ("cpu", "cpu128", "cpu256", "gpu128", "gpu256")


def variant_config(name: str, batch: int) -> Config:
    """The config of a benchmark variant, with the training batch size set."""
    if name in ("cpu", "cpu128"):
        config = builtin_config(name)
    elif name == "cpu256":
        config = builtin_config("cpu128")
        model = config.model
        config = dataclasses.replace(config, model=dataclasses.replace(
            model, image_size=256,
            detector=dataclasses.replace(model.detector, input_size=128),
            dense_motion=dataclasses.replace(model.dense_motion, input_size=128),
        ))
    elif name == "gpu128":
        config = builtin_config("gpu_default")
    elif name == "gpu256":
        config = builtin_config("gpu")
    elif name.endswith((".yaml", ".yml")):
        config = load_config(name)
    else:
        raise SystemExit(f"unknown variant '{name}' (choose from {', '.join(VARIANTS)}, or a .yaml config)")
    return dataclasses.replace(config, train=dataclasses.replace(
        config.train, batch_size=batch, flip=True, color_jitter=0.1, preview_every=0, checkpoint_every=0,
    ))


def synthetic_pairs(size: int, count: int = 16, seed: int = 0) -> FramePairs:
    """Random blocky textures as training frames (speed does not depend on content)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(count, size // 8, size // 8, 3), dtype=np.uint8)
    frames = np.ascontiguousarray(np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2))
    boxes = np.tile([0.0, 0.0, size, size], (count, 1))
    return FramePairs(TrainingFrames(frames, np.arange(count), boxes, 30.0, "synthetic"), 1, 4, True, 0.1, seed)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds per call of ``fn``, ``repeats`` calls after ``warmup`` untimed ones.

    On a shared machine the wall time grows with other processes' load; the CPU time (summed over
    this process's threads) much less so, which is why both are kept.
    """
    for _ in range(warmup):
        fn()
    synchronize(device)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        synchronize(device)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def mixed_precision_available(device: torch.device) -> bool:
    """Whether the trainer's autocast does anything on this device (bf16 on CPU needs AVX-512 BF16/AMX)."""
    return not isinstance(autocast_context(device, True), type(autocast_context(device, False)))


def mixed_precision_name(device: torch.device) -> str:
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16"


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def make_trainer(config: Config, device: torch.device, mixed: bool, out_dir: Path) -> Trainer:
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, mixed_precision=mixed))
    torch.manual_seed(0)
    return Trainer(FOMM(config.model), config, synthetic_pairs(config.model.image_size), device, out_dir)


def benchmark_variant(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    config = variant_config(name, args.batch)
    model_cfg = config.model
    out_dir = Path(args.scratch)
    result: dict = {
        "variant": name,
        "image_size": model_cfg.image_size,
        "detector_input": model_cfg.detector.input_size,
        "dense_motion_input": model_cfg.dense_motion.input_size,
        "num_keypoints": model_cfg.detector.num_keypoints,
    }
    model = FOMM(model_cfg)
    result["parameters"] = sum(p.numel() for p in model.parameters())
    result["detector_parameters"] = sum(p.numel() for p in model.detector.parameters())

    # FLOPs: the detector on one frame; the training step (forward + backward) per sample.
    detector = model.detector.to(device).eval()
    s = model_cfg.detector.input_size
    with torch.no_grad():
        result["detector_gflop_per_frame"] = count_flops(lambda: detector(torch.rand(1, 3, s, s, device=device))) / 1e9
    flop_batch = 2
    small = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=flop_batch))
    trainer = make_trainer(small, device, mixed=False, out_dir=out_dir)
    result["train_gflop_per_sample"] = count_flops(trainer.step) / 1e9 / flop_batch
    del trainer

    # Training step time at the benchmark batch size.
    precisions = [("fp32", False)]
    if mixed_precision_available(device):
        precisions.append((mixed_precision_name(device), True))
    else:
        result["mixed_precision"] = "not supported on this device: skipped"
    for label, mixed in precisions:
        trainer = make_trainer(config, device, mixed, out_dir)
        # The FLOP-counting step above already paid the once-per-process costs (lazy imports,
        # autograd start-up), so few or no untimed steps are needed here.
        wall, cpu = timed(trainer.step, device, args.warmup, args.steps)
        result[f"train_step_s_{label}"] = statistics.median(wall)
        result[f"train_step_cpu_s_{label}"] = statistics.median(cpu)
        result[f"train_step_times_{label}"] = wall
        del trainer

    # Tracking: the detector alone on batches of frames already at its input size.
    frames = torch.rand(args.track_batch, 3, s, s, device=device)
    for label, mixed in precisions:
        def run(batch: torch.Tensor = frames) -> None:
            with torch.no_grad(), autocast_context(device, mixed):
                detector(batch)

        run(frames[:4])  # warm-up on a few frames
        wall, cpu = timed(run, device, 0, args.track_repeats)
        result[f"track_fps_{label}"] = args.track_batch / statistics.median(wall)
        result[f"track_cpu_s_per_frame_{label}"] = statistics.median(cpu) / args.track_batch
    result["detector_gflops_achieved_fp32"] = result["detector_gflop_per_frame"] * result["track_fps_fp32"]
    result["train_gflops_achieved_fp32"] = result["train_gflop_per_sample"] * args.batch / result["train_step_s_fp32"]
    return result


def machine(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": str(device),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        info["cpu"] = names[0] if names else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def markdown_table(results: list[dict], precision_label: str) -> str:
    """One row per variant; times are wall seconds with this process's CPU seconds in brackets."""
    mp = precision_label
    header = (
        f"| variant | frames px | detector px | params M (detector) | detector GFLOP/frame | train GFLOP/sample "
        f"| train step fp32, s (CPU s) | train step {mp}, s (CPU s) | track fp32, frames/s | track {mp}, frames/s |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        def step(label: str) -> str:
            key = f"train_step_s_{label}"
            return f"{r[key]:.2f} ({r[f'train_step_cpu_s_{label}']:.2f})" if key in r else "n/a"

        def fps(label: str) -> str:
            key = f"track_fps_{label}"
            return f"{r[key]:.1f}" if key in r else "n/a"

        lines.append(
            f"| {r['variant']} | {r['image_size']} | {r['detector_input']} "
            f"| {r['parameters'] / 1e6:.2f} ({r['detector_parameters'] / 1e6:.2f}) | {r['detector_gflop_per_frame']:.2f} "
            f"| {r['train_gflop_per_sample']:.1f} | {step('fp32')} | {step(mp)} | {fps('fp32')} | {fps(mp)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--variants", default=None, help=f"comma-separated, from {', '.join(VARIANTS)} or .yaml config files "
                        "(default: cpu,cpu128,cpu256 on CPU, all five on CUDA)")
    parser.add_argument("--batch", type=int, default=8, help="training batch size (default 8)")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps (default 2)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed training steps before the timed ones (default 0)")
    parser.add_argument("--track-batch", type=int, default=64, help="frames per detector call (default 64)")
    parser.add_argument("--track-repeats", type=int, default=1, help="timed detector calls (default 1)")
    parser.add_argument("--out", default="runs/benchmark_speed.json", help="JSON results file")
    parser.add_argument("--scratch", default="runs/benchmark_speed_scratch", help="trainer output folder (unused)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no GPU")
    torch.set_num_threads(args.threads)
    names = args.variants.split(",") if args.variants else (list(VARIANTS) if device.type == "cuda" else ["cpu", "cpu128", "cpu256"])
    load_before = os.getloadavg()
    started = time.perf_counter()
    results = []
    for name in names:
        t0 = time.perf_counter()
        results.append(benchmark_variant(name.strip(), args, device))
        results[-1]["benchmark_seconds"] = time.perf_counter() - t0
        print(f"{name}: done in {results[-1]['benchmark_seconds']:.0f} s", file=sys.stderr, flush=True)
    report = {
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "machine": machine(device),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "seconds": time.perf_counter() - started,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "scratch")},
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    mp = mixed_precision_name(device)
    print(markdown_table(results, mp))
    print()
    print(f"{report['machine']['cpu']}; torch {torch.__version__}; {args.threads} threads; device {device}"
          + (f" ({report['machine']['gpu']})" if "gpu" in report["machine"] else "")
          + f"; load average before/after {load_before[0]:.1f}/{report['load_average_after'][0]:.1f}"
          + f"; {report['seconds']:.0f} s; JSON: {out}")


if __name__ == "__main__":
    main()
