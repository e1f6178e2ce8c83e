"""``fomm-kp animate`` and ``fomm-kp evaluate reconstruction``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from fomm_kp.cli.app import app, console, evaluate_app, progress_bar
from fomm_kp.errors import FommError
from fomm_kp.files import refuse_overwriting_inputs


@app.command()
def animate(
    source: Path = typer.Argument(..., help="Source image (png/jpg/...) or a video (see --source-frame)."),
    driving: Path = typer.Argument(..., help="Driving video whose motion is transferred."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-m", help="checkpoint.pt from fomm-kp train."),
    out: Path = typer.Option(Path("animation.mp4"), "--out", "-o", help="Output video: .mp4 or .gif."),
    relative: bool = typer.Option(True, "--relative/--absolute", help="Relative motion (default) or absolute keypoints."),
    adapt_scale: bool = typer.Option(True, "--adapt-scale/--no-adapt-scale", help="Scale relative motion by the keypoint hulls' size ratio."),
    best_frame: bool = typer.Option(False, "--best-frame", help="Measure motion from the driving frame that best matches the source."),
    source_frame: int = typer.Option(0, min=0, help="Frame of SOURCE to use when SOURCE is a video."),
    side_by_side: bool = typer.Option(False, "--side-by-side", help="Write source | driving | result."),
    keypoints: bool = typer.Option(False, "--keypoints", help="Draw keypoints on the panels."),
    size: Optional[int] = typer.Option(None, min=8, help="Height of the result panel in pixels (default: the model's image size)."),
    start: int = typer.Option(0, min=0, help="First driving frame."),
    stop: Optional[int] = typer.Option(None, help="Stop before this driving frame."),
    stride: int = typer.Option(1, min=1, help="Use every N-th driving frame."),
    batch_size: int = typer.Option(16, min=1, help="Frames per forward pass."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N."),
) -> None:
    """Animate SOURCE with the motion of DRIVING (First Order Motion Model motion transfer)."""
    from fomm_kp.animation.render import animate as animate_fn
    from fomm_kp.runtime.model import Model

    refuse_overwriting_inputs({"--out": out}, [source, driving, checkpoint])
    if not checkpoint.exists():
        raise FommError(f"checkpoint not found: {checkpoint}")
    model = Model.load(checkpoint, device=device)
    with progress_bar() as bar:
        task = bar.add_task("animating", total=None, info="")
        result = animate_fn(
            source, driving, model, out, relative=relative, adapt_scale=adapt_scale, best_frame=best_frame,
            source_frame=source_frame, side_by_side=side_by_side, show_keypoints=keypoints, size=size,
            start=start, stop=stop, stride=stride, batch_size=batch_size,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(f"wrote {result.num_frames} frames ({result.frame_size[0]}x{result.frame_size[1]}) -> {result.path}; "
                  f"reference driving frame {result.reference_frame}, movement scale {result.movement_scale:.2f}")


@evaluate_app.command()
def reconstruction(
    videos: list[Path] = typer.Argument(..., help="Held-out videos; each is reconstructed from its first frame."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-m", help="checkpoint.pt from fomm-kp train."),
    landmarks: str = typer.Option("none", help="Face landmarks for AKD/MKR: none, auto, face-alignment or dlib."),
    landmark_size: int = typer.Option(256, min=16, help="Frame size for landmark detection; AKD is in its pixels."),
    start: int = typer.Option(0, min=0, help="First frame of each video (the source)."),
    stop: Optional[int] = typer.Option(None, help="Stop before this frame."),
    stride: int = typer.Option(1, min=1, help="Use every N-th frame as a driving frame."),
    batch_size: int = typer.Option(16, min=1, help="Frames per forward pass."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the report as JSON."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N."),
) -> None:
    """Reconstruction L1 (and face AKD / missing-keypoint rate) with the FOMM papers' protocol."""
    from fomm_kp.runtime.model import Model
    from fomm_kp.evaluation.reconstruction import PAPER_VOXCELEB_256, evaluate_reconstruction
    from fomm_kp.files import atomic_write

    refuse_overwriting_inputs({"--out": out}, [*videos, checkpoint])
    if not checkpoint.exists():
        raise FommError(f"checkpoint not found: {checkpoint}")
    model = Model.load(checkpoint, device=device)
    with progress_bar() as bar:
        task = bar.add_task("reconstructing", total=None, info="")
        report = evaluate_reconstruction(
            model, videos, landmarks=None if landmarks == "none" else landmarks, landmark_size=landmark_size,
            start=start, stop=stop, stride=stride, batch_size=batch_size,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    data = report.to_dict()

    def fmt(value, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    table = Table(title=f"reconstruction at {report.image_size} px (step {report.checkpoint_step})")
    for column in ("video", "frames", "L1", "AKD", "MKR", "copy-source L1", "copy-source AKD"):
        table.add_column(column, justify="left" if column == "video" else "right")
    for row in data["videos"]:
        table.add_row(Path(row["video"]).name, str(row["frames"]), fmt(row["l1"]), fmt(row["akd"], 3),
                      fmt(row["mkr"], 3), fmt(row["baseline_l1"]), fmt(row["baseline_akd"], 3))
    table.add_row("all", str(data["frames"]), fmt(data["l1"]), fmt(data["akd"], 3), fmt(data["mkr"], 3),
                  fmt(data["baseline_l1"]), fmt(data["baseline_akd"], 3))
    Console().print(table)
    if report.landmarks:
        console.print(f"landmarks: {report.landmarks}; AKD in pixels of {report.landmark_size} px frames")
    console.print(f"reference, FOMM paper on VoxCeleb at 256 px: L1 {PAPER_VOXCELEB_256['l1']}, AKD {PAPER_VOXCELEB_256['akd']}")
    for note in report.notes:
        console.print(f"note: {note}")
    if out is not None:
        atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2)))
        console.print(f"report -> {out}")
