"""``fomm-kp train``, ``fomm-kp track`` and ``fomm-kp demo``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import typer

from fomm_kp import api
from fomm_kp import demo as demo_module
from fomm_kp.cli.app import app, console, progress_bar, results, working
from fomm_kp.cli.many import OVERWRITE, RAY_ADDRESS, WORKERS, run_options, run_with_progress
from fomm_kp.cli.options import box_in_frame, check_device, check_option, check_suffix, parse_box, parse_subjects
from fomm_kp.config import BUILTIN_CONFIGS, load_config
from fomm_kp.distributed import RunOptions, TrackJob, expand_sources, is_many, output_paths
from fomm_kp.errors import FommError, Interrupted
from fomm_kp.files import all_or_nothing, check_output_folder, check_outputs
from fomm_kp.localize.foreground import OnSubject
from fomm_kp.runtime import Detector
from fomm_kp.runtime.detector import check_device as device_kind
from fomm_kp.runtime.loading import require_backend
from fomm_kp.settings import SEED, integer, number
from fomm_kp.tracks import Tracks, load_tracks, save_tracks
from fomm_kp.tracks.io import WRITABLE_TRACK_SUFFIXES, require_format
from fomm_kp.tracks.nwb import PLACEHOLDER_SPECIES, NwbSubject, nwb_paths
from fomm_kp.tracks.overlay import write_overlay
from fomm_kp.tracks.smoothing import Smoothing, smooth_tracks
from fomm_kp.training.distributed import ranks_from_environment
from fomm_kp.training.clips import training_clips
from fomm_kp.training.trainer import TrainingInterrupted
from fomm_kp.video import VIDEO_SUFFIXES, WRITABLE_VIDEO_SUFFIXES, FrameRange, probe


def _nwb_subject(subject_id: Optional[str], species: Optional[str], sex: str, age: Optional[str]) -> NwbSubject:
    ids = tuple(s for s in (subject_id or "").split(",") if s.strip())
    return NwbSubject(ids, species or PLACEHOLDER_SPECIES, sex, age or "P0D/")


def train_with_progress(video: Path | list[Path], out: Path, **kwargs) -> api.Model:
    """Run :func:`fomm_kp.train` under a progress bar showing loss and ETA (rank 0 only under DDP)."""
    if not ranks_from_environment().writer:
        return api.train(video, out, **kwargs)
    with progress_bar("training") as update:
        return api.train(video, out, progress=update, **kwargs)


def _launch_ddp(processes: int) -> int:
    """Run this same ``fomm-kp train`` command under torchrun on ``processes`` processes; its exit status."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip or arg == "--ddp" or arg.startswith("--ddp="):
            skip = arg == "--ddp"
            continue
        args.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "fomm_kp", *args]
    console.print(f"DDP: {processes} processes: {' '.join(command[1:])}", markup=False, highlight=False, soft_wrap=True)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:  # torchrun hears Ctrl-C too and stops its processes
        return 130


def track_with_progress(video: Path, model: Detector, **kwargs) -> Tracks:
    """Run :func:`fomm_kp.track` under a progress bar."""
    with progress_bar("tracking") as update:
        return api.track(video, model, progress=update, **kwargs)


@app.command()
def train(
    videos: list[Path] = typer.Argument(..., help="The video(s) to learn from (mp4/avi/mov/gif, a folder of images, "
                                        "or a folder of videos); pairs are drawn within each clip."),
    out: Path = typer.Option(Path("runs/train"), "--out", "-o", help="Folder for checkpoint.pt and preview.png."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config file, or a built-in name (default: cpu, or gpu_default on a CUDA GPU): cpu, cpu128, gpu, animation-cpu, animation-gpu, gpu_default, tiny."),
    steps: Optional[int] = typer.Option(None, help="Stop after this many steps (overrides the config)."),
    minutes: Optional[float] = typer.Option(None, help="Stop after this many minutes of training."),
    crop: Optional[str] = typer.Option(None, help="Fixed crop box x0,y0,x1,y1 in pixels for every frame."),
    resume: bool = typer.Option(False, help="Continue from OUT/checkpoint.pt."),
    overwrite: bool = typer.Option(False, help="Replace a trained checkpoint already in OUT."),
    seed: Optional[int] = typer.Option(None, help="Random seed (overrides the config)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N (default: cuda when present)."),
    subjects: Optional[str] = typer.Option(None, help="Animals in the video: a number, or auto (as many as persist); each is followed and cropped, one detector learns from all (default: the config's data.subjects, 1)."),
    ddp: int = typer.Option(0, "--ddp", min=0, help="Train on N processes with DistributedDataParallel: starts "
                            "torchrun (one process per GPU, NCCL; gloo on CPUs). train.batch_size is the global batch."),
) -> None:
    """Train a keypoint detector on one video or several, self-supervised (no labels).

    Under torchrun (``torchrun --nproc_per_node N -m fomm_kp train ...``) every process trains on its
    share of each batch (DistributedDataParallel) and only rank 0 writes.
    """
    # Check the inputs before anything is logged or drawn, so that a bad one gives one error line.
    check_option("--steps", steps, integer(1))
    check_option("--minutes", minutes, number(above=0.0))
    check_option("--seed", seed, SEED)
    check_device(device)
    if resume and overwrite:
        raise FommError("choose one of --resume and --overwrite")
    box = parse_box(crop)
    clips = training_clips(videos)
    for clip in clips:
        box_in_frame(box, probe(clip))
    count = parse_subjects(subjects)
    checkpoint = out / "checkpoint.pt"
    config_file = config if config is not None and config not in BUILTIN_CONFIGS else None
    check_outputs({"--out": checkpoint, "preview": out / "preview.png"}, [*clips, config_file])
    existing = "resume" if resume else "overwrite" if overwrite else "refuse"
    if resume and count is not None:
        raise FommError("a resumed run keeps its checkpoint's subjects: leave out --subjects")
    # No --config: the default for the device (the GPU default on a CUDA GPU), chosen and logged here once.
    loaded = None if resume else load_config(config) if config is not None else api.default_config(device_kind(device))
    if count is not None:
        loaded = dataclasses.replace(loaded, data=dataclasses.replace(loaded.data, subjects=count))
    api.run_config(checkpoint, config if resume else loaded, existing, {"steps": steps, "minutes": minutes, "seed": seed})
    if ddp > 0 and not ranks_from_environment().distributed:
        raise typer.Exit(_launch_ddp(ddp))
    try:
        model = train_with_progress(clips, out, config=loaded, steps=steps, minutes=minutes, seed=seed, crop=box,
                                    device=device, existing=existing)
    except TrainingInterrupted as exc:
        raise Interrupted(f"interrupted at step {exc.step}; checkpoint saved to {exc.checkpoint}; "
                          f"continue with: fomm-kp train {' '.join(map(str, clips))} --out {out} --resume") from None
    if ranks_from_environment().writer:
        console.print(f"trained {model.step} steps -> {checkpoint} (preview: {out / 'preview.png'})")


def _track_many(items: List[Path], out: Optional[Path], checkpoint: Path, options: dict, run: RunOptions) -> None:
    """``fomm-kp track`` on several videos: one tracks file per video in the folder ``out``."""
    if options["overlay"] is not None or options["csv"] is not None:
        raise FommError("--overlay and --csv take one video; with several videos --out names a folder of .npz tracks")
    folder = out if out is not None else Path("tracks")
    if folder.suffix.lower() in WRITABLE_TRACK_SUFFIXES:
        raise FommError(f"with several videos --out names a folder (one tracks file per video), got {folder}")
    videos = expand_sources(items, VIDEO_SUFFIXES)
    output_paths(videos, folder, ".npz")
    job = TrackJob(checkpoint, folder, device=options["device"], backend=options["backend"], engine=options["engine"],
                   localize=options["localize"], crop=None if options["crop"] is None else tuple(options["crop"]),
                   frames=options["frames"], batch_size=options["batch_size"], smoothing=options["smoothing"])
    run_with_progress(videos, job, run, inputs=[checkpoint, options["engine"]])


@app.command()
def track(
    videos: List[Path] = typer.Argument(..., help="Video to track; or several: files, folders, globs or .txt lists of videos."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-m", help="checkpoint.pt from fomm-kp train, a student from fomm-kp distill, or an exported .onnx."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Tracks file: .npz, .csv (DeepLabCut), .slp or .nwb (default tracks.npz); with several videos a folder (default tracks/)."),
    overlay: Optional[Path] = typer.Option(None, help="Also write a video (.mp4/.gif) with keypoints and trails."),
    csv: Optional[Path] = typer.Option(None, help="Also write DeepLabCut-style CSV with likelihood."),
    crop: Optional[str] = typer.Option(None, help="Fixed crop box x0,y0,x1,y1 in pixels."),
    localize: Optional[str] = typer.Option(None, help="on/off/auto: crop around the subject (default: as trained); online: follow it frame by frame as `fomm-kp live` does."),
    stride: int = typer.Option(1, min=1, help="Track every N-th frame."),
    start: int = typer.Option(0, min=0, help="First frame."),
    stop: Optional[int] = typer.Option(None, help="Stop before this frame."),
    batch_size: int = typer.Option(64, min=1, help="Frames per forward pass."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N."),
    backend: str = typer.Option("auto", help="torch, onnx (ONNX Runtime), tensorrt, or auto: onnx for students on the CPU, else torch."),
    engine: Optional[Path] = typer.Option(None, help="Exported .onnx (onnx backend) or .engine (tensorrt backend) to run."),
    smooth: int = typer.Option(0, min=0, help="Smooth keypoints over this many frames (odd, >= 3; confidence-weighted local polynomial fit); 0: off."),
    smooth_order: int = typer.Option(2, help="Degree of the smoothing's local polynomial: 2 (quadratic) keeps fast peaks, 1 (a line) steadies more (0-3)."),
    subjects: Optional[str] = typer.Option(None, help="Animals to follow: a number or auto (default: as trained)."),
    subject_id: Optional[str] = typer.Option(None, "--subject-id", help="NWB: the subject's id, or one per subject separated by commas (default: the subject names)."),
    species: Optional[str] = typer.Option(None, help="NWB: species, Latin binomial (Mus musculus) or NCBI taxonomy IRI (default: a placeholder for 'an animal')."),
    sex: str = typer.Option("U", help="NWB: M, F, O or U (unknown)."),
    age: Optional[str] = typer.Option(None, help="NWB: ISO 8601 age, e.g. P8W, or a range P2D/P4D (default: P0D/, unknown)."),
    workers: int = WORKERS,
    ray_address: Optional[str] = RAY_ADDRESS,
    overwrite: bool = OVERWRITE,
) -> None:
    """Track keypoints through a video (or many) with a trained detector (teacher or distilled student)."""
    # Check the inputs before anything is logged, drawn or written, so that a bad one gives one
    # error line and no output file.
    if localize not in (None, "on", "off", "auto", "online"):
        raise FommError(f"--localize must be on, off, auto or online, got '{localize}'")
    check_device(device)
    box = parse_box(crop)
    if smooth and (smooth < 3 or smooth % 2 == 0 or smooth > 1001):
        raise FommError(f"--smooth must be 0 (off) or an odd number of frames from 3 to 1001, got {smooth}")
    if not 0 <= smooth_order <= 3:
        raise FommError(f"--smooth-order must be 0, 1, 2 or 3, got {smooth_order}")
    if smooth and smooth_order >= smooth:
        raise FommError(f"--smooth-order must be below --smooth ({smooth}), got {smooth_order}")
    smoothing = Smoothing(window=smooth, order=smooth_order) if smooth else None
    count = parse_subjects(subjects)
    nwb = _nwb_subject(subject_id, species, sex, age)
    if count is not None and box is not None:
        raise FommError("--subjects and --crop exclude each other: several subjects are each cropped on their own")
    require_backend(backend, checkpoint)
    if is_many(videos, VIDEO_SUFFIXES):
        if count is not None:
            raise FommError("--subjects takes one video: with several videos each is tracked as trained")
        options = {"overlay": overlay, "csv": csv, "device": device, "backend": backend, "engine": engine,
                   "localize": localize, "crop": box, "frames": FrameRange(start, stop, stride), "batch_size": batch_size,
                   "smoothing": smoothing}
        _track_many(videos, out, checkpoint, options, run_options(workers, ray_address, overwrite))
        return
    video, out = videos[0], out if out is not None else Path("tracks.npz")
    check_suffix("--out", out, WRITABLE_TRACK_SUFFIXES)
    check_suffix("--csv", csv, (".csv",))
    check_suffix("--overlay", overlay, WRITABLE_VIDEO_SUFFIXES)
    check_outputs({"--out": out, "--csv": csv, "--overlay": overlay}, [video, checkpoint, engine])
    require_format(out)
    info = probe(video)
    box_in_frame(box, info)
    if start >= info.num_frames or (stop is not None and stop <= start):
        raise FommError(f"no frames to track in {video} (start={start}, stop={stop}, frames={info.num_frames})")
    model = api.load_model(checkpoint, device=device, backend=backend, engine=engine)
    looks = box
    if count is not None:
        looks = dataclasses.replace(model.crop, localized=True, subjects=0 if count == "auto" else count)
    # With smoothing, the tracks are smoothed before anything is written, and the overlay drawn from them.
    with all_or_nothing(out, overlay, csv):
        tracks = track_with_progress(video, model, overlay=None if smoothing else overlay, crop=looks,
                                     localize=localize, frames=FrameRange(start, stop, stride), batch_size=batch_size)
        if smoothing is not None:
            tracks = smooth_tracks(tracks, smoothing)
            if overlay is not None:
                with working("drawing the overlay"):
                    write_overlay(tracks, video, overlay)
        written = nwb_paths(out, tracks.subject_names) if out.suffix.lower() == ".nwb" else [out]
        with all_or_nothing(*written):
            save_tracks(tracks, out, nwb)
            if csv is not None:
                save_tracks(tracks, csv)
    several = f" of {tracks.num_subjects} subjects" if tracks.num_subjects > 1 else ""
    where = OnSubject.from_data(tracks.metadata.get("on_subject", {}))
    console.print(f"tracked {tracks.num_frames} frames x {tracks.num_keypoints} keypoints{several} -> "
                  f"{', '.join(str(p) for p in written)}" + (f", overlay {overlay}" if overlay else "")
                  + (f" (smoothed over {smooth} frames)" if smooth else "") + f"; {where.describe()}")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Folder for everything the demo writes."),
    minutes: Optional[float] = typer.Option(None, help="Training time (default: the demo's budget)."),
    steps: Optional[int] = typer.Option(None, help="Training steps (default: the demo's budget)."),
) -> None:
    """Train on the bundled sample clip, track it, animate it and score its behaviour."""
    check_option("--minutes", minutes, number(above=0.0))
    check_option("--steps", steps, integer(1))
    check_output_folder(out, "tracks.npz")
    written = demo_module.run_demo(out, minutes=minutes, steps=steps,
                                   train_fn=train_with_progress, track_fn=track_with_progress)
    for name, path in written.items():
        results.print(f"{name:>12}: {path}")
    where = OnSubject.from_data(load_tracks(written["tracks"]).metadata.get("on_subject", {}))
    results.print(f"   keypoints: {where.describe()}")
