"""``fomm-kp evaluate keypoints | reconstruction | behaviour``: measured quality next to baselines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from fomm_kp.behaviour.classifiers import KINDS
from fomm_kp.cli.app import console, evaluate_app, progress_bar, results, working
from fomm_kp.cli.options import check_choice, check_device, check_option, check_suffix
from fomm_kp.cli.behaviour import feature_config
from fomm_kp.errors import FommError
from fomm_kp.evaluation.behaviour import evaluate_behaviour as run_behaviour
from fomm_kp.evaluation.harness import evaluate_labels
from fomm_kp.evaluation.keypoints import CrossValidation, save_evaluation
from fomm_kp.evaluation.landmarks import BACKENDS as LANDMARK_BACKENDS
from fomm_kp.evaluation.landmarks import check_landmarks
from fomm_kp.evaluation.reconstruction import PAPER_VOXCELEB_256, RESOLUTIONS, evaluate_reconstruction
from fomm_kp.files import atomic_write, check_output_folder, check_outputs, refuse_folder_holding_inputs
from fomm_kp.runtime import Model
from fomm_kp.runtime.loading import require_backend
from fomm_kp.settings import integer
from fomm_kp.tracks.io import require_format
from fomm_kp.video import FrameRange, probe


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
    if fold_mode not in ("shuffled", "blocks"):
        raise FommError(f"--fold-mode must be 'shuffled' or 'blocks', got '{fold_mode}'")
    check_option("--folds", folds, integer(2))
    check_suffix("--json", json_out, (".json",))
    check_outputs({"--json": json_out}, [labels, checkpoint, tracks, video])
    for path in (labels, tracks):
        require_format(path)
    if checkpoint is not None:
        require_backend("auto", checkpoint)
    protocol = CrossValidation(folds=folds, fold_mode=fold_mode, use_confidence=confidence)
    with progress_bar("detecting", transient=True) as update:
        evaluation = evaluate_labels(labels, checkpoint=checkpoint, tracks=tracks, video=video, untrained=untrained,
                                     protocol=protocol, individual=individual, background=background, progress=update)
    results.print(evaluation.table(), markup=False, highlight=False)
    if json_out is not None:
        save_evaluation(evaluation, json_out)
        console.print(f"wrote {json_out}")


def _reconstruction_table(data: dict, title: str) -> Table:
    def fmt(value: float | None, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    table = Table(title=title)
    for column in ("video", "frames", "reconstruction", "L1", "AKD", "MKR", "AED"):
        table.add_column(column, justify="left" if column in ("video", "reconstruction") else "right")
    for row in [*data["videos"], dict(data, video="all")]:
        for method, prefix in (("model", ""), ("copy source", "baseline_")):
            table.add_row(Path(row["video"]).name if not prefix else "", str(row["frames"]) if not prefix else "", method,
                          fmt(row[f"{prefix}l1"]), fmt(row[f"{prefix}akd"], 3), fmt(row[f"{prefix}mkr"], 3),
                          fmt(row[f"{prefix}aed"], 3))
    return table


@evaluate_app.command()
def reconstruction(
    videos: list[Path] = typer.Argument(..., help="Held-out videos; each is reconstructed from its first frame."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-m", help="checkpoint.pt from fomm-kp train."),
    landmarks: str = typer.Option("none", help="Face landmarks for AKD/MKR: none, auto, face-alignment or dlib."),
    aed: Optional[bool] = typer.Option(None, "--aed/--no-aed", help="Face identity distance (AED) with dlib's face-recognition model (default: on with --landmarks)."),
    resolution: str = typer.Option("model", help="model: measure at the model's image size (the papers' protocol); full: at the video's own size, rendered as animate renders."),
    landmark_size: int = typer.Option(256, min=16, help="Frame size for face metrics; AKD is in its pixels."),
    start: int = typer.Option(0, min=0, help="First frame of each video (the source)."),
    stop: Optional[int] = typer.Option(None, help="Stop before this frame."),
    stride: int = typer.Option(1, min=1, help="Use every N-th frame as a driving frame."),
    batch_size: int = typer.Option(16, min=1, help="Frames per forward pass."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the report as JSON."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N."),
) -> None:
    """Reconstruction L1 (and for faces AKD, missing-keypoint rate and AED) with the FOMM papers' protocol,
    beside copying the source frame."""
    check_choice("--landmarks", landmarks, ("none", *LANDMARK_BACKENDS))
    check_choice("--resolution", resolution, RESOLUTIONS)
    if landmarks != "none":
        check_landmarks(landmarks)
    check_suffix("--out", out, (".json",))
    check_device(device)
    check_outputs({"--out": out}, [*videos, checkpoint])
    for video in videos:
        probe(video)
    model = Model.load(checkpoint, device=device)
    identity = "dlib" if (aed if aed is not None else landmarks != "none") else None
    with progress_bar("reconstructing") as update:
        report = evaluate_reconstruction(
            model, videos, landmarks=None if landmarks == "none" else landmarks, landmark_size=landmark_size,
            frames=FrameRange(start, stop, stride), batch_size=batch_size, progress=update, identity=identity,
            resolution=resolution)
    data = report.to_dict()
    where = f"{report.image_size} px (the model's size)" if resolution == "model" else "each video's own size"
    results.print(_reconstruction_table(data, f"reconstruction at {where}, step {report.checkpoint_step}"))
    if report.landmarks:
        results.print(f"landmarks: {report.landmarks}; AKD in pixels of {report.landmark_size} px frames")
    if report.identity:
        results.print(f"identity: {report.identity}; AED in its descriptor units (same person: below ~0.6)")
    results.print(f"reference, FOMM paper on VoxCeleb at 256 px: L1 {PAPER_VOXCELEB_256['l1']}, AKD {PAPER_VOXCELEB_256['akd']}")
    for note in report.notes:
        results.print(f"note: {note}")
    if out is not None:
        atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2)))
        console.print(f"report -> {out}")


def _episodes_table(results_: dict, title: str) -> Table:
    view = Table(title=title)
    for col in ("features", "setting", "accuracy", "macro-F1"):
        view.add_column(col)
    for name in ("keypoints", "pixel"):
        for key, r in results_.get(name, {}).items():
            if "skipped" in r:
                view.add_row(name, key, "skipped", "")
            elif "accuracy_mean" in r:
                view.add_row(name, f"{r['n_way']}-way {key}", f"{r['accuracy_mean']:.3f} ± {r['accuracy_sd']:.3f}",
                             f"{r['macro_f1_mean']:.3f} ± {r['macro_f1_sd']:.3f}")
            else:
                view.add_row(name, key, f"{r['accuracy']:.3f}", f"{r['macro_f1']:.3f}")
    return view


@evaluate_app.command("behaviour")
def behaviour(
    table: Path = typer.Argument(..., help="CSV video,start_frame,end_frame,label[,tracks][,group][,x0,y0,x1,y1]: one clip per row"),
    out: Path = typer.Option(..., "--out", "-o", help="results folder"),
    tracks_dir: Optional[Path] = typer.Option(None, help="folder of tracks named after the videos"),
    shots: Optional[List[int]] = typer.Option(None, "--shots", help="K of K-shot (repeatable; default 1, 2, 4)"),
    episodes: int = typer.Option(200, help="random episodes per setting"),
    kind: Optional[List[str]] = typer.Option(None, "--kind", help="classifier kind (repeatable; default prototype)"),
    pixel: bool = typer.Option(True, help="also run the pixel motion-energy baseline"),
    keypoints: bool = typer.Option(True, help="run keypoint features (needs tracks)"),
    window: Optional[List[float]] = typer.Option(None, "--window", help="window length in seconds (repeatable)"),
    stride: float = typer.Option(0.25, help="seconds between window centres"),
) -> None:
    """N-way K-shot episodes and leave-one-group-out: keypoint features vs a pixel baseline."""
    check_option("--episodes", episodes, integer(1))
    check_option("--shots", shots, integer(1))
    check_choice("--kind", kind, KINDS)
    refuse_folder_holding_inputs("--out", out, [table, tracks_dir])
    check_output_folder(out, "results.json")
    config = feature_config(window, stride)
    with working("evaluating"):
        found = run_behaviour(table, out, tracks_dir=tracks_dir, pixel=pixel, keypoints=keypoints,
                              shots=shots or (1, 2, 4), episodes=episodes, kinds=kind or ("prototype",),
                              config=config)
    results.print(_episodes_table(found, f"{table.name}: {found['clips']} clips, clip-level, {episodes} episodes"))
    console.print(f"results -> {out / 'results.json'}")
