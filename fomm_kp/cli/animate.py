"""``fomm-kp animate``: motion transfer from a driving video to a source image."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fomm_kp.animation.render import PanelOptions, TransferOptions
from fomm_kp.animation.render import animate as animate_fn
from fomm_kp.cli.app import app, console, progress_bar
from fomm_kp.cli.options import check_device, check_suffix
from fomm_kp.errors import FommError
from fomm_kp.files import check_outputs
from fomm_kp.runtime import Model
from fomm_kp.video import IMAGE_SUFFIXES, WRITABLE_VIDEO_SUFFIXES, FrameRange, probe


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
    size: Optional[int] = typer.Option(None, min=8, help="Height of the result panel in pixels (default: the source's own size; odd sides are rounded up to even)."),
    start: int = typer.Option(0, min=0, help="First driving frame."),
    stop: Optional[int] = typer.Option(None, help="Stop before this driving frame."),
    stride: int = typer.Option(1, min=1, help="Use every N-th driving frame."),
    batch_size: int = typer.Option(16, min=1, help="Frames per forward pass."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N."),
) -> None:
    """Animate SOURCE with the motion of DRIVING (First Order Motion Model motion transfer)."""
    check_suffix("--out", out, WRITABLE_VIDEO_SUFFIXES)
    check_device(device)
    check_outputs({"--out": out}, [source, driving, checkpoint])
    _check_frames(source, driving, source_frame, FrameRange(start, stop, stride))
    transfer = TransferOptions(relative=relative, adapt_scale=adapt_scale, best_frame=best_frame)
    panels = PanelOptions(side_by_side=side_by_side, show_keypoints=keypoints, size=size)
    model = Model.load(checkpoint, device=device)
    with progress_bar("animating") as update:
        result = animate_fn(source, driving, model, out, transfer, panels, source_frame, FrameRange(start, stop, stride),
                            batch_size, update)
    console.print(f"wrote {result.num_frames} frames ({result.frame_size[0]}x{result.frame_size[1]}) -> {result.path}; "
                  f"reference driving frame {result.reference_frame}, movement scale {result.movement_scale:.2f}")


def _check_frames(source: Path, driving: Path, source_frame: int, frames: FrameRange) -> None:
    """The source frame and some driving frames must exist (checked before the model is loaded)."""
    if source.suffix.lower() not in IMAGE_SUFFIXES:
        count = probe(source).num_frames
        if source_frame >= count:
            raise FommError(f"--source-frame {source_frame} is past the end of {source} ({count} frames)")
    count = probe(driving).num_frames
    if not frames.indices(count):
        raise FommError(f"no driving frames in {driving} (start={frames.start}, stop={frames.stop}, frames={count})")
