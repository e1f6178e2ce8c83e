"""``fomm-kp distill`` (small student from a trained detector) and ``fomm-kp export`` (ONNX / TensorRT)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import typer

from fomm_kp.cli.app import app, console, progress_bar, results, working
from fomm_kp.cli.options import check_device, check_option, check_suffix
from fomm_kp.deploy.distill import DistillConfig
from fomm_kp.deploy.distill import distill as run_distill
from fomm_kp.deploy.export import OnnxOptions
from fomm_kp.deploy.export import export as run_export
from fomm_kp.deploy.tensorrt import EngineOptions
from fomm_kp.errors import FommError
from fomm_kp.files import all_or_nothing, atomic_write, check_outputs
from fomm_kp.video import probe
from fomm_kp.models.student import StudentConfig, student_config_for
from fomm_kp.optional import require
from fomm_kp.runtime.backends import require_tensorrt
from fomm_kp.runtime.networks import LoadedDetector, load_detector
from fomm_kp.runtime.onnx_graph import MAX_OPSET, MIN_OPSET
from fomm_kp.settings import SEED, integer, number
from fomm_kp.training.clips import training_clips

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def _scaled_student(teacher: LoadedDetector, width: float) -> Optional[StudentConfig]:
    """The default student of ``teacher`` with its channel widths multiplied by ``width`` (None: 1)."""
    if width == 1.0:
        return None
    base = student_config_for(teacher.config.model.detector)
    return dataclasses.replace(
        base, widths=tuple(max(8, int(round(w * width / 8)) * 8) for w in StudentConfig().widths),
        decoder_width=max(8, int(round(StudentConfig().decoder_width * width / 8)) * 8))


@app.command()
def distill(
    videos: list[Path] = typer.Argument(..., help="The video(s) the teacher was trained on (or more footage of the "
                                        "same scene), or a folder of videos."),
    teacher: Path = typer.Option(..., "--teacher", "-t", help="Teacher checkpoint.pt from fomm-kp train."),
    out: Path = typer.Option(Path("student.pt"), "--out", "-o", help="Student checkpoint to write."),
    steps: int = typer.Option(4000, min=1, help="Student training steps."),
    minutes: Optional[float] = typer.Option(None, help="Stop student training after this many minutes."),
    batch_size: int = typer.Option(64, min=1, help="Crops per step."),
    max_frames: int = typer.Option(3000, min=10, help="Frames read from the video (evenly strided)."),
    width: float = typer.Option(1.0, min=0.25, help="Multiplier of the student's channel widths."),
    refresh_every: int = typer.Option(0, min=0, help="Draw new augmented crops (and teacher targets) every N steps; 0: once."),
    seed: int = typer.Option(0, help="Random seed."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N (default: cuda when present)."),
    report: Optional[Path] = typer.Option(None, help="Also write the disagreement report as JSON."),
) -> None:
    """Distil the teacher's detector into a small, fast student; report their disagreement on held-out frames."""
    check_option("--minutes", minutes, number(above=0.0))
    check_option("--width", width, number(0.25, 8.0))
    check_option("--seed", seed, SEED)
    check_device(device)
    check_suffix("--report", report, (".json",))
    clips = training_clips(videos)
    check_outputs({"--out": out, "--report": report}, [*clips, teacher])
    for clip in clips:
        probe(clip)
    config = DistillConfig(steps=steps, minutes=minutes or 0.0, batch_size=batch_size,
                           max_frames=max_frames, seed=seed, refresh_every=refresh_every)
    student_config = _scaled_student(load_detector(teacher), width)  # reads (and checks) the teacher before any work
    with all_or_nothing(out, report), progress_bar("distilling") as update:
        result = run_distill(clips, teacher, out, config, student_config, device, update)
        if report is not None:
            atomic_write(report, lambda tmp: Path(tmp).write_text(json.dumps(result.report, indent=2)))
    r = result.report
    held = r["heldout"]
    results.print(f"student -> {result.checkpoint}: {r['student_gflops']:.3f} GFLOPs/frame "
                  f"({100 * r['flops_ratio']:.1f}% of the teacher's {r['teacher_gflops']:.3f}), "
                  f"{r['student_parameters']:,} parameters")
    results.print(f"held-out student-teacher disagreement on {held['frames']} frames: "
                  f"{held['px256']['mean']:.2f} px mean, {held['px256']['median']:.2f} median, "
                  f"{held['px256']['p95']:.2f} p95 (256-px crop); {held['px_frame']['mean']:.2f} px mean in the video frame")
    if report is not None:
        console.print(f"report -> {report}")


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="Teacher (fomm-kp train) or student (fomm-kp distill) checkpoint."),
    onnx: Path = typer.Option(..., "--onnx", help="ONNX file to write."),
    tensorrt: Optional[Path] = typer.Option(None, "--tensorrt", help="Also build a TensorRT engine here (needs TensorRT's Python package)."),
    fp16: bool = typer.Option(False, "--fp16", help="TensorRT engine in FP16 (the default precision)."),
    int8: bool = typer.Option(False, "--int8", help="TensorRT engine in INT8, calibrated on frames of --video."),
    video: Optional[Path] = typer.Option(None, help="INT8 calibration video (default: the one the model was trained on)."),
    batch: Optional[int] = typer.Option(None, min=1, help="Static batch size (default: dynamic batch)."),
    max_batch: int = typer.Option(64, min=1, help="Largest batch of the TensorRT optimisation profile."),
    opset: int = typer.Option(17, help="ONNX opset (TensorRT 8.5 / JetPack 5 parses up to 17)."),
) -> None:
    """Export a detector to ONNX (checked, compared with PyTorch) and optionally build a TensorRT engine."""
    check_suffix("--onnx", onnx, (".onnx",))
    check_suffix("--tensorrt", tensorrt, ENGINE_SUFFIXES)
    check_option("--opset", opset, integer(MIN_OPSET, MAX_OPSET))
    check_outputs({"--onnx": onnx, "--tensorrt": tensorrt}, [checkpoint, video])
    if fp16 and int8:
        raise FommError("choose one of --fp16 and --int8")
    if (fp16 or int8) and tensorrt is None:
        raise FommError("--fp16/--int8 set the TensorRT engine's precision: add --tensorrt MODEL.engine")
    options = OnnxOptions(opset=opset, dynamic_batch=batch is None, batch_size=batch or 1)
    engine = EngineOptions(precision="int8" if int8 else "fp16", video=video, max_batch=max_batch)
    for module in ("onnx", "onnxruntime"):
        require(module, "fomm-kp export")
    if tensorrt is not None:
        require_tensorrt()
    load_detector(checkpoint)  # read (and checked) before any work
    with working("exporting"):
        report = run_export(checkpoint, onnx, tensorrt, options, engine)
    results.print(report.format())
