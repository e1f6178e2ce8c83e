"""GPU benchmark of the GPU default config: training speed, time to the CPU default's accuracy, tracking speed.

Prints one JSON line per measurement and a summary; run it through ``scripts/benchmark_gpu.sh``.

1. Training: steps/s of the ``gpu_default`` config (bf16 autocast, channels-last, frames on the
   GPU) on synthetic frames, and the achieved TFLOP/s: FLOPs of one training step (forward and
   backward of every network and loss term, counted by ``torch.utils.flop_counter``: matrix products
   and convolutions) × steps/s.
2. Accuracy against time on dlc-openfield: trains on ``m3v1mp4.mp4`` for ``--accuracy-minutes``,
   snapshots the model every ``--snapshot-seconds``, then scores every snapshot with the protocol of
   ``scripts/openfield_accuracy.py`` (116 labelled images of another session, 5-fold) and reports
   the first training time at which it reaches the CPU default's figures (3.5 px full regression,
   5.7 px best single keypoint, from 15 CPU minutes: README).
3. Tracking: frames/s of the teacher and of its default student on batches of 256-px crops already
   on the device (torch fp32 and bf16; ONNX Runtime's CUDA provider when present), and of
   ``fomm_kp.track`` on the openfield video end to end (decoding, crops, detector).

``--tiny`` runs the same steps with the ``tiny`` config, on the CPU unless told otherwise, with
short limits: a check of the script's logic in a minute or two, not a measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dlc-openfield"
CPU_DEFAULT = {"full_regression_px": 3.5, "best_single_px": 5.7}  # README: 1051 steps, 15 CPU minutes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny config and short limits: checks the logic")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the dlc-openfield folder")
    parser.add_argument("--speed-seconds", type=float, default=30.0, help="timed training steps")
    parser.add_argument("--accuracy-minutes", type=float, default=3.0, help="training time of the accuracy run")
    parser.add_argument("--snapshot-seconds", type=float, default=30.0, help="time between scored snapshots")
    parser.add_argument("--tracking-seconds", type=float, default=5.0, help="timing per tracking figure")
    parser.add_argument("--batch", type=int, default=512, help="crops per batch when timing tracking")
    parser.add_argument("--skip", nargs="*", default=[], choices=("training", "accuracy", "tracking"))
    parser.add_argument("--out", type=Path, help="write all results as JSON here")
    args = parser.parse_args()
    if args.tiny:
        args.speed_seconds, args.accuracy_minutes, args.snapshot_seconds = 3.0, 0.15, 3.0
        args.tracking_seconds, args.batch = 1.0, 16
    args.device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    return args


def emit(results: dict, key: str, value: Any) -> None:
    results[key] = value
    print(json.dumps({key: value}), flush=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def config_for(args: argparse.Namespace):
    from fomm_kp.config import builtin_config

    return builtin_config("tiny" if args.tiny else "gpu_default")


def synthetic_pairs(size: int, count: int = 256):
    from fomm_kp.training.dataset import FramePairs, TrainingFrames

    frames = np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    boxes = np.tile([0.0, 0.0, size, size], (count, 1))
    return FramePairs(TrainingFrames(frames, np.arange(count), boxes, 30.0, "synthetic"), 1, 30, True, 0.1)


def training_speed(args: argparse.Namespace, workdir: Path) -> dict:
    """Steps/s and achieved TFLOP/s of the training step, through :class:`fomm_kp.training.trainer.Trainer`."""
    from torch.utils.flop_counter import FlopCounterMode

    from fomm_kp.models import FOMM
    from fomm_kp.training.trainer import Trainer

    config = config_for(args)
    torch.manual_seed(0)
    trainer = Trainer(FOMM(config.model), config, synthetic_pairs(config.model.frame_size), args.device, workdir)
    with FlopCounterMode(display=False) as counter:
        trainer.step()
    flops = counter.get_total_flops()
    for _ in range(3):
        trainer.step()
    synchronize(args.device)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < args.speed_seconds or steps < 3:
        trainer.step()
        steps += 1
        if steps % 10 == 0:
            synchronize(args.device)
    synchronize(args.device)
    per_second = steps / (time.perf_counter() - started)
    losses = {k: float(v) for k, v in trainer.last_losses.items()}
    return {"config": "tiny" if args.tiny else "gpu_default", "batch": config.train.batch_size,
            "image_size": config.model.image_size, "mixed_precision": config.train.mixed_precision,
            "steps_per_second": round(per_second, 3), "samples_per_second": round(per_second * config.train.batch_size, 1),
            "gflop_per_step": round(flops / 1e9, 1), "achieved_tflops": round(flops * per_second / 1e12, 3),
            "finite_losses": all(np.isfinite(list(losses.values())))}


def train_with_snapshots(args: argparse.Namespace, workdir: Path, every_steps: int) -> list[dict]:
    """Train on the openfield video for ``--accuracy-minutes``, copying each checkpoint (every
    ``every_steps`` steps) with its step and training time."""
    from fomm_kp import api

    config = config_for(args)
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, checkpoint_every=every_steps, preview_every=0, steps=10**7, minutes=args.accuracy_minutes))
    snapshots: list[dict] = []
    clock = {"first": None}

    def progress(update) -> None:
        now = time.monotonic()
        if clock["first"] is None:
            clock["first"] = now
        for path in update.files:
            if path.name == "checkpoint.pt":
                copy = workdir / f"snapshot_{update.done}.pt"
                shutil.copyfile(path, copy)
                snapshots.append({"step": update.done, "seconds_since_first_step": round(now - clock["first"], 1),
                                  "path": str(copy)})

    started = time.monotonic()
    api.train(args.data / "videos" / "m3v1mp4.mp4", workdir / "run", config=config, device=args.device,
              progress=progress)
    for snapshot in snapshots:
        snapshot["seconds_since_train_call"] = round(snapshot["seconds_since_first_step"] + (clock["first"] - started), 1)
    return snapshots


def time_to_accuracy(args: argparse.Namespace, workdir: Path, steps_per_second: float) -> dict:
    """Training time at which the GPU config first scores the CPU default's accuracy on openfield."""
    from fomm_kp.evaluation.harness import evaluate_model_on_labels
    from fomm_kp.evaluation.keypoints import CrossValidation
    from fomm_kp.evaluation.labels import load_labels
    from fomm_kp.runtime import Model

    every = max(1, int(steps_per_second * args.snapshot_seconds))
    snapshots = train_with_snapshots(args, workdir, every)
    labelled = load_labels(args.data / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv")
    frames = labelled.load_images()
    reached = None
    for snapshot in snapshots:
        model = Model.load(snapshot.pop("path"), device=args.device)
        result = evaluate_model_on_labels(labelled, {"gpu": model}, frames=frames,
                                          protocol=CrossValidation(5, "shuffled", 0)).results["gpu"]
        snapshot.update(full_regression_px=round(float(np.mean(result.regression)), 2),
                        best_single_px=round(float(np.mean(result.single)), 2))
        print(json.dumps({"snapshot": snapshot}), flush=True)
        if reached is None and all(snapshot[k] <= v for k, v in CPU_DEFAULT.items()):
            reached = snapshot
    return {"cpu_default": CPU_DEFAULT, "snapshot_every_steps": every, "snapshots": snapshots,
            "first_at_cpu_default_accuracy": reached}


def frames_per_second(run: Callable[[], object], batch: int, seconds: float, device: torch.device) -> float:
    for _ in range(3):
        run()
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or count < 3:
        run()
        count += 1
    synchronize(device)
    return round(count * batch / (time.perf_counter() - started), 1)


def detectors(args: argparse.Namespace) -> dict[str, Any]:
    """The config's teacher detector and its default student (random weights: speed does not depend on them)."""
    from fomm_kp.crops import CropSettings
    from fomm_kp.models.keypoint_detector import KeypointDetector
    from fomm_kp.models.student import StudentDetector, student_config_for
    from fomm_kp.runtime.networks import LoadedDetector

    config = config_for(args)
    torch.manual_seed(0)
    teacher = KeypointDetector(config.model.detector).eval()
    student = StudentDetector(student_config_for(config.model.detector)).eval()
    return {name: LoadedDetector(network, config, CropSettings(), {}, name, "random weights")
            for name, network in (("teacher", teacher), ("student", student))}


def torch_speed(loaded, crops: torch.Tensor, args: argparse.Namespace, bf16: bool) -> float:
    """Frames/s of a detector on 256-px crops already on the device (resized to its input first)."""
    import torch.nn.functional as F

    network = loaded.network.to(args.device)
    if args.device.type == "cuda":
        network = network.to(memory_format=torch.channels_last)
    size = loaded.input_size

    @torch.no_grad()
    def run() -> None:
        images = crops if crops.shape[-1] == size else F.interpolate(crops, size=(size, size), mode="area")
        if args.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(args.device.type, dtype=torch.bfloat16, enabled=bf16):
            network(images)

    return frames_per_second(run, len(crops), args.tracking_seconds, args.device)


def onnx_cuda_speed(loaded, args: argparse.Namespace) -> float | str:
    """Frames/s on ONNX Runtime's CUDA provider (crops at the detector's input size, from host memory)."""
    from fomm_kp.optional import available

    if not available("onnxruntime"):
        return "onnxruntime not installed"
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return f"no CUDAExecutionProvider (providers: {', '.join(onnxruntime.get_available_providers())})"
    from fomm_kp.runtime.onnx_graph import export_onnx, onnx_session

    loaded.network.to("cpu").float()
    session = onnx_session(export_onnx(loaded), providers=["CUDAExecutionProvider"])
    size = loaded.input_size
    images = np.random.default_rng(0).random((args.batch, 3, size, size), dtype=np.float32)
    name = session.get_inputs()[0].name
    return frames_per_second(lambda: session.run(None, {name: images}), args.batch, args.tracking_seconds,
                             torch.device("cpu"))


def track_speed(args: argparse.Namespace, frames: int) -> dict:
    """``fomm_kp.track`` on the first ``frames`` frames of the openfield video, whole frames, end to end."""
    from fomm_kp.models import FOMM
    from fomm_kp.runtime import Model, track
    from fomm_kp.video import FrameRange

    config = config_for(args)
    torch.manual_seed(0)
    model = Model(FOMM(config.model), config, {"localized": False}, 0, args.device)
    video = args.data / "videos" / "m3v1mp4.mp4"
    started = time.perf_counter()
    tracks = track(video, model, frames=FrameRange(0, frames), batch_size=args.batch)
    return {"frames": tracks.num_frames, "frames_per_second": round(tracks.num_frames / (time.perf_counter() - started), 1),
            "note": "whole 640x480 frames: decoding and per-frame resizing on the CPU included"}


def tracking(args: argparse.Namespace) -> dict:
    found = detectors(args)
    crops = torch.rand(args.batch, 3, 256, 256, device=args.device)
    result: dict[str, Any] = {"crop_px": 256, "batch": args.batch}
    for name, loaded in found.items():
        result[name] = {"input_px": loaded.input_size,
                        "torch_fp32": torch_speed(loaded, crops, args, bf16=False),
                        "torch_bf16": torch_speed(loaded, crops, args, bf16=True)}
        if args.device.type == "cuda":
            result[name]["onnxruntime_cuda_fp32"] = onnx_cuda_speed(loaded, args)
    result["track_video"] = track_speed(args, 64 if args.tiny else 1000)
    return result


def main() -> int:
    args = parse_args()
    if args.device.type == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA GPU visible to torch (use --tiny to check the script on the CPU)", file=sys.stderr)
        return 2
    if "accuracy" not in args.skip and not (args.data / "videos" / "m3v1mp4.mp4").is_file():
        print(f"error: dlc-openfield not found under {args.data} (or pass --skip accuracy)", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}
    gpu = torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else platform.processor() or "cpu"
    emit(results, "machine", {"device": str(args.device), "name": gpu, "torch": torch.__version__,
                              "platform": platform.platform(), "load_average": os.getloadavg(), "tiny": args.tiny})
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="benchmark_gpu_") as tmp:
        speed = {"steps_per_second": 1.0}
        if "training" not in args.skip:
            speed = training_speed(args, Path(tmp) / "speed")
            emit(results, "training", speed)
        if "accuracy" not in args.skip:
            emit(results, "accuracy", time_to_accuracy(args, Path(tmp), speed["steps_per_second"]))
        if "tracking" not in args.skip:
            emit(results, "tracking", tracking(args))
    emit(results, "seconds", round(time.monotonic() - started, 1))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
