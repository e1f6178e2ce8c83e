"""``fomm-kp evaluate keypoints``: discovered keypoints against hand labels, next to baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fomm_kp.cli.app import console, evaluate_app, progress_bar
from fomm_kp.errors import FommError


@evaluate_app.command("keypoints")
def keypoints(
    labels: Path = typer.Argument(..., help="Labelled frames: DeepLabCut CollectedData .csv/.h5 or SLEAP .slp."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-m", help="A trained model to run on the labelled images."),
    tracks: Optional[Path] = typer.Option(None, "--tracks", "-t", help="Tracks (.npz/.csv/.h5/.slp) of the labelled video."),
    video: Optional[Path] = typer.Option(None, help="Video of the labelled frames when their images are not on disk."),
    folds: int = typer.Option(5, help="Number of cross-validation folds."),
    fold_mode: str = typer.Option("shuffled", help="shuffled, or blocks (contiguous runs of labelled frames)."),
    confidence: bool = typer.Option(False, help="Add keypoint confidences to the regression features."),
    untrained: bool = typer.Option(True, help="Also score an untrained network of the same config."),
    individual: Optional[str] = typer.Option(None, help="Which animal, for multi-animal label files."),
    background: Optional[Path] = typer.Option(
        None, help="Video or image folder of the same camera for the empty-scene background "
        "(default: median of the labelled images)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the table as JSON here."),
) -> None:
    """Regress labelled parts from discovered keypoints (k-fold ridge) and report pixel errors, with
    the best single keypoint per part and the mean-pose, blob-moment and thumbnail baselines."""
    from fomm_kp.evaluation.keypoints import evaluate_labels, save_evaluation

    if fold_mode not in ("shuffled", "blocks"):
        raise FommError(f"--fold-mode must be 'shuffled' or 'blocks', got '{fold_mode}'")
    with progress_bar(transient=True) as bar:
        task = bar.add_task("detecting", total=None, info="")
        evaluation = evaluate_labels(
            labels, checkpoint=checkpoint, tracks=tracks, video=video, untrained=untrained, folds=folds,
            fold_mode=fold_mode, use_confidence=confidence, individual=individual, background=background,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    typer.echo(evaluation.table())
    if json_out is not None:
        save_evaluation(evaluation, json_out)
        console.print(f"wrote {json_out}")
