"""Deployment benchmark: GFLOPs, parameters and frames/s of the teacher and the student detectors.

    python scripts/benchmark_deploy.py                                   # random cpu-config teacher + default student
    python scripts/benchmark_deploy.py --teacher runs/of/checkpoint.pt --student student.pt --out bench.json

Measured, per crop size S (128 and 256 px by default; S is the side of the square crop handed to the
pipeline, as ``fomm_kp.track`` cuts it from the frame):

- teacher (torch): ``KeypointDetector.forward`` on float ``(B, 3, S, S)``; it resizes to its input
  size inside (antialiased interpolate), which is counted;
- student (torch) and student (ONNX Runtime, CPU): the network on ``(B, 3, s, s)`` at its own input
  size ``s``; the resize S → s happens before the network, as in tracking, and is timed separately
  (``fomm_kp.video.resize_frame``, PIL, one frame at a time, single thread): the ``pipeline`` figure
  adds it;
- with a GPU: torch (CUDA) and ONNX Runtime (CUDAExecutionProvider, when installed) throughput.

Timings: ``--threads`` intra-op threads for torch and ONNX Runtime (default 2; the students are
also timed on 1 thread), ONNX Runtime as tracking runs it (worker threads sleep, not spin), batches of
``--batch`` (default 64) crops, the median over repeats for at least ``--seconds`` per figure. The
machine's load average is recorded: on a shared machine other processes slow every figure.

GFLOPs per frame: 2 × multiply-accumulates of convolutions and matrix products of one forward pass
(``torch.utils.flop_counter``); element-wise operations and the resize are not counted. Jetson
estimates: ``utilisation × peak / FLOPs`` with the published peaks below, an optimistic
compute-bound figure (small networks are usually limited by memory traffic and per-layer overhead).
"""

from __future__ import annotations

import argparse
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

from fomm_kp.config import builtin_config
from fomm_kp.crops import CropSettings
from fomm_kp.models import KeypointDetector
from fomm_kp.models.student import StudentDetector, count_flops, count_parameters, student_config_for
from fomm_kp.runtime.networks import LoadedDetector, load_detector
from fomm_kp.runtime.onnx_graph import export_onnx, onnx_session
from fomm_kp.video import resize_frame

# Published peak rates (GPU), FLOP/s.
JETSON_PEAKS = {
    # Jetson Nano: 128 Maxwell CUDA cores at 921.6 MHz, "472 GFLOPS" FP16 (NVIDIA Jetson Nano datasheet).
    "Jetson Nano (FP16)": 472e9,
    # Jetson Orin Nano 8GB: 1024 Ampere CUDA cores at 625 MHz -> 2 x 1024 x 0.625e9 = 1.28 TFLOPS FP32
    # (from NVIDIA's published core count and clock; tensor cores not counted).
    "Jetson Orin Nano 8GB (FP32 CUDA cores)": 1.28e12,
    # Jetson AGX Orin 64GB: 2048 CUDA cores, "5.3 FP32 TFLOPs" (Jetson AGX Orin technical brief).
    "Jetson AGX Orin 64GB (FP32 CUDA cores)": 5.3e12,
}
UTILISATION = 0.30


def timed(run: Callable[[], object], batch: int, seconds: float) -> dict[str, float]:
    """Frames/s of ``run`` (one batch per call): median and best wall-clock over repeats lasting
    ``seconds``, and the process CPU time per frame (all threads), which other processes on a
    shared machine inflate much less than wall-clock time."""
    for _ in range(3):
        run()
    times: list[float] = []
    cpu_start = time.process_time()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    cpu = (time.process_time() - cpu_start) / (len(times) * batch)
    return {"fps_median": batch / statistics.median(times), "fps_best": batch / min(times),
            "cpu_ms_per_frame": 1e3 * cpu, "repeats": len(times)}


def resize_cost(size: int, target: int, count: int = 64) -> float:
    """Seconds per frame of ``resize_frame`` (PIL, as tracking resizes crops) from ``size`` to ``target``."""
    crops = np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    for crop in crops[:4]:
        resize_frame(crop, target)
    start = time.perf_counter()
    for crop in crops:
        resize_frame(crop, target)
    return (time.perf_counter() - start) / count


def load_or_build(teacher: str | None, student: str | None) -> tuple[LoadedDetector, LoadedDetector, str]:
    if teacher is not None:
        t = load_detector(teacher)
        note = f"teacher {teacher}"
    else:
        config = builtin_config("cpu")
        t = LoadedDetector(KeypointDetector(config.model.detector).eval(), config, CropSettings(), {}, "teacher",
                           "random cpu config")
        note = "teacher: random weights, built-in cpu config (speed and FLOPs do not depend on weights)"
    if student is not None:
        s = load_detector(student)
        note += f"; student {student}"
    else:
        sc = student_config_for(t.config.model.detector)
        s = LoadedDetector(StudentDetector(sc).eval(), t.config, CropSettings(), {}, "student", "random default student")
        note += "; student: random weights, default architecture"
    return t, s, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", help="teacher checkpoint (default: random cpu-config teacher)")
    parser.add_argument("--student", help="student checkpoint (default: random default student)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="crop sizes S fed to the pipeline")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timing per figure")
    parser.add_argument("--skip-teacher", action="store_true", help="skip the (slow) teacher timings")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    teacher, student, note = load_or_build(args.teacher, args.student)
    results: dict = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "threads": args.threads, "batch": args.batch,
                    "load_average_start": os.getloadavg()},
        "models": note,
        "detectors": {},
        "timings": [],
    }
    for name, d in (("teacher", teacher), ("student", student)):
        flops = count_flops(d.network, d.input_size)
        results["detectors"][name] = {"input_size": d.input_size, "keypoints": d.num_keypoints,
                                      "gflops_per_frame": flops / 1e9, "parameters": count_parameters(d.network)}
    t_flops = results["detectors"]["teacher"]["gflops_per_frame"]
    s_flops = results["detectors"]["student"]["gflops_per_frame"]
    results["detectors"]["student"]["flops_vs_teacher"] = s_flops / t_flops
    results["jetson_estimates_fps"] = {
        device: {name: UTILISATION * peak / (d["gflops_per_frame"] * 1e9) for name, d in results["detectors"].items()}
        for device, peak in JETSON_PEAKS.items()
    }
    results["jetson_assumption"] = f"{UTILISATION:.0%} of the published peak, FLOPs-bound (optimistic)"

    def report(entry: dict) -> None:
        results["timings"].append(entry)
        print(json.dumps(entry), flush=True)

    student_onnx = export_onnx(student)
    session = onnx_session(student_onnx, threads=args.threads)
    single = onnx_session(student_onnx, threads=1)
    s = student.input_size
    rng = np.random.default_rng(0)
    student_images = rng.random((args.batch, 3, s, s), dtype=np.float32)
    student_tensor = torch.from_numpy(student_images)
    with torch.no_grad():
        torch_student = timed(lambda: student.network(student_tensor), args.batch, args.seconds)
        torch.set_num_threads(1)
        torch_single = timed(lambda: student.network(student_tensor), args.batch, args.seconds)
        torch.set_num_threads(args.threads)
    onnx_student = timed(lambda: session.run(None, {"images": student_images}), args.batch, args.seconds)
    onnx_single = timed(lambda: single.run(None, {"images": student_images}), args.batch, args.seconds)
    for size in args.sizes:
        resize = resize_cost(size, s) if size != s else 0.0
        for label, timing in (("student (torch)", torch_student), ("student (torch, 1 thread)", torch_single),
                              ("student (onnxruntime)", onnx_student), ("student (onnxruntime, 1 thread)", onnx_single)):
            report({"model": label, "crop_size": size, "network_input": s, **timing,
                    "resize_ms_per_frame": 1e3 * resize,
                    "pipeline_fps": 1 / (1 / timing["fps_median"] + resize)})
        if not args.skip_teacher:
            images = torch.rand(args.batch, 3, size, size)
            with torch.no_grad():
                timing = timed(lambda: teacher.network(images), args.batch, args.seconds)
            report({"model": "teacher (torch)", "crop_size": size, "network_input": teacher.input_size, **timing,
                    "note": "resize to the input size inside the network, included"})
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        results["machine"]["gpu"] = torch.cuda.get_device_name(0)
        for name, d in (("teacher", teacher), ("student", student)):
            module = d.network.to(gpu)
            images = torch.rand(256, 3, d.input_size, d.input_size, device=gpu)

            def run() -> None:
                with torch.no_grad():
                    module(images)
                torch.cuda.synchronize()

            report({"model": f"{name} (torch cuda)", "batch": 256, "network_input": d.input_size, **timed(run, 256, args.seconds)})
            try:
                gpu_session = onnx_session(export_onnx(d), providers=["CUDAExecutionProvider"])
            except Exception as exc:  # onnxruntime-gpu absent: say so in the results
                report({"model": f"{name} (onnxruntime cuda)", "skipped": str(exc).splitlines()[0]})
                continue
            batch = np.random.default_rng(1).random((256, 3, d.input_size, d.input_size), dtype=np.float32)
            report({"model": f"{name} (onnxruntime cuda)", "batch": 256, "network_input": d.input_size,
                    **timed(lambda: gpu_session.run(None, {"images": batch}), 256, args.seconds)})
    else:
        results["gpu"] = "no CUDA device visible to torch: GPU throughput not measured"
    results["machine"]["load_average_end"] = os.getloadavg()
    print(json.dumps({k: v for k, v in results.items() if k != "timings"}, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
