"""``fomm-kp distill`` (small student from a trained detector) and ``fomm-kp export`` (ONNX / TensorRT)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from fomm_kp.cli.app import app, console, progress_bar
from fomm_kp.errors import FommError
from fomm_kp.files import refuse_overwriting_inputs


_PHASES = {"frames": "reading frames", "teacher": "teacher targets", "training": "distilling", "evaluating": "evaluating"}


@app.command()
def distill(
    video: Path = typer.Argument(..., help="The video the teacher was trained on (or more footage of the same scene)."),
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
    import dataclasses

    from fomm_kp.deploy.distill import DistillConfig, DistillProgress
    from fomm_kp.deploy.distill import distill as run_distill
    from fomm_kp.models.student import StudentConfig

    refuse_overwriting_inputs({"--out": out, "--report": report}, [video, teacher])
    if not video.exists():
        raise FommError(f"video not found: {video}")
    config = DistillConfig(steps=steps, minutes=minutes or 0.0, batch_size=batch_size,
                           max_frames=max_frames, seed=seed, refresh_every=refresh_every)
    student_config = None
    if width != 1.0:
        from fomm_kp.deploy.export import load_detector
        from fomm_kp.models.student import student_config_for

        base = student_config_for(load_detector(teacher).config.model.detector)
        student_config = dataclasses.replace(
            base, widths=tuple(max(8, int(round(w * width / 8)) * 8) for w in StudentConfig().widths),
            decoder_width=max(8, int(round(StudentConfig().decoder_width * width / 8)) * 8))
    with progress_bar() as bar:
        task = bar.add_task("distilling", total=None, info="")

        def on_progress(p: DistillProgress) -> None:
            info = f"loss {p.losses['total']:.4f} (kp {p.losses['keypoints']:.4f})" if p.losses else ""
            bar.update(task, description=_PHASES.get(p.phase, p.phase), completed=p.done, total=p.total, info=info)

        result = run_distill(video, teacher, out, config, student_config, device, on_progress)
    r = result.report
    held = r["heldout"]
    console.print(f"student -> {result.checkpoint}: {r['student_gflops']:.3f} GFLOPs/frame "
                  f"({100 * r['flops_ratio']:.1f}% of the teacher's {r['teacher_gflops']:.3f}), "
                  f"{r['student_parameters']:,} parameters")
    console.print(f"held-out student-teacher disagreement on {held['frames']} frames: "
                  f"{held['px256']['mean']:.2f} px mean, {held['px256']['median']:.2f} median, "
                  f"{held['px256']['p95']:.2f} p95 (256-px crop); {held['px_frame']['mean']:.2f} px mean in the video frame")
    if report is not None:
        from fomm_kp.files import atomic_write

        atomic_write(report, lambda tmp: Path(tmp).write_text(json.dumps(r, indent=2)))
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
    from fomm_kp.deploy.export import export as run_export
    from fomm_kp.deploy.export import export_tensorrt, tensorrt_profile

    if onnx.suffix.lower() != ".onnx":
        raise FommError(f"--onnx {onnx}: the file name must end in .onnx")
    if tensorrt is not None and tensorrt.suffix.lower() not in (".engine", ".plan", ".trt"):
        raise FommError(f"--tensorrt {tensorrt}: the file name must end in .engine, .plan or .trt")
    refuse_overwriting_inputs({"--onnx": onnx, "--tensorrt": tensorrt}, [checkpoint, video])
    if fp16 and int8:
        raise FommError("choose one of --fp16 and --int8")
    if (fp16 or int8) and tensorrt is None:
        raise FommError("--fp16/--int8 set the TensorRT engine's precision: add --tensorrt MODEL.engine")
    report = run_export(
        checkpoint, onnx, dynamic_batch=batch is None, batch_size=batch or 1, opset=opset,
        progress=lambda text: console.print(f"[dim]{text}[/dim]"),
    )
    console.print(report.format())
    if tensorrt is not None:
        if report.check.tensorrt_errors:
            raise FommError(f"{onnx} exceeds TensorRT 8.5's limits (see above): no engine built")
        precision = "int8" if int8 else "fp16"
        console.print(f"[dim]building the TensorRT engine ({precision})[/dim]")
        export_tensorrt(checkpoint, onnx, tensorrt, precision, video,
                        batch_sizes=tensorrt_profile(batch is None, batch or 1, max_batch))
        console.print(f"TensorRT engine ({precision}) -> {tensorrt}")
