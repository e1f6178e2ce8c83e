"""The spine's Python API: ``train`` a detector on one clip, ``load_model``, ``track`` a video.

    model = fomm_kp.train("mouse.mp4", "runs/mouse", minutes=10)
    tracks = fomm_kp.track("mouse.mp4", model, overlay="overlay.mp4")
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from fomm_kp.checkpoint import read_checkpoint
from fomm_kp.config import Config, load_config
from fomm_kp.training.dataset import FramePairs, load_training_frames
from fomm_kp.errors import FommError
from fomm_kp.runtime.model import Model, choose_device
from fomm_kp.models import FOMM
from fomm_kp.tracks import Tracks, save_tracks
from fomm_kp.training.trainer import Trainer, TrainProgress
from fomm_kp.video import VideoWriter, iter_frames, probe, resize_frame, crop_frame
from fomm_kp.viz import draw_keypoints, draw_trails, keypoint_colors

if TYPE_CHECKING:
    from fomm_kp.runtime.backends import DetectorModel

__all__ = ["train", "load_model", "track", "subject_boxes"]

log = logging.getLogger(__name__)

Box = Sequence[float]


def subject_boxes(
    video: str | os.PathLike, config: Config, crop: Box | None = None, side: int | None = None,
    align: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per-frame crop boxes ``(frame_indices (T,), boxes (T, 4 or 5), found (T,))``, or None for whole frames.

    A fixed ``crop`` box applies to every frame. Otherwise ``config.data.localize`` decides:
    ``on`` always follows the subject (:mod:`fomm_kp.localize`), ``auto`` only when it is small in
    the frame, ``off`` never. ``side`` fixes the box side (tracking uses the trained one). Boxes
    have a fifth column, the angle that turns each crop to the subject's heading, when ``align``
    (None: as ``config.data.align`` decides; tracking uses the trained model's choice).
    """
    info = probe(video)
    if crop is not None:
        box = np.asarray(crop, dtype=np.float64)
        if box.shape != (4,) or box[2] <= box[0] or box[3] <= box[1]:
            raise FommError(f"crop must be x0,y0,x1,y1 with x1 > x0 and y1 > y0, got {list(crop)}")
        return np.arange(info.num_frames), np.tile(box, (info.num_frames, 1)), np.ones(info.num_frames, bool)
    if config.data.localize == "off":
        return None
    from fomm_kp.localize import boxes as localize

    settings = localize.LocalizeConfig(margin=config.data.box_margin)
    background = localize.estimate_background(video, settings)
    if config.data.localize == "auto":
        decision = localize.decide(video, settings, background)
        if not decision.use:
            return None
    located = localize.boxes_for_video(video, settings, background=background, side=side)
    if align is None:
        align = localize.should_align(located, config.data.align, settings)
        log.info("crops turned to the subject's heading: %s (align %s, elongation %.2f)",
                 "yes" if align else "no", config.data.align, located.elongation)
    return located.frame_indices, located.crop_boxes(align).astype(np.float64), located.found


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def train(
    video: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: Config | str | os.PathLike | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    crop: Box | None = None,
    resume: bool = False,
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    overwrite: bool = False,
) -> Model:
    """Train a FOMM keypoint detector on one video, self-supervised; returns the trained model.

    Writes ``checkpoint.pt`` (atomically, with its config) and ``preview.png`` into ``out_dir``.
    ``steps``/``minutes``/``seed`` override the config. With ``resume``, training continues from
    ``out_dir/checkpoint.pt`` with that checkpoint's config. A trained checkpoint already in
    ``out_dir`` is never replaced unless ``resume`` or ``overwrite`` is set.
    """
    out_dir = Path(out_dir)
    video = Path(video)
    checkpoint_path = out_dir / "checkpoint.pt"
    if checkpoint_path.exists() and not (resume or overwrite):
        raise FommError(f"{checkpoint_path} already holds a trained model: pass --resume to continue it, "
                        "--overwrite to replace it, or choose another --out")
    states, start_step = None, 0
    if resume:
        config, states, start_step, _ = read_checkpoint(checkpoint_path)
        log.info("resuming from %s at step %d", checkpoint_path, start_step)
    elif not isinstance(config, Config):
        config = load_config(config)
    overrides = {}
    if steps is not None:
        overrides["steps"] = int(steps)
    if minutes is not None:
        overrides["minutes"] = float(minutes)
    if seed is not None:
        overrides["seed"] = int(seed)
    if overrides:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, **overrides))
    if config.train.steps <= start_step and config.train.minutes <= 0:
        raise FommError(f"nothing to do: the checkpoint is at step {start_step} and steps is {config.train.steps}")
    if config.train.num_threads > 0:
        torch.set_num_threads(config.train.num_threads)
    _seed_everything(config.train.seed + start_step)
    device = choose_device(device)

    started = time.monotonic()
    boxes = subject_boxes(video, config, crop)
    if boxes is not None:  # train only on frames where the subject was found
        boxes = tuple(a[boxes[2]] for a in boxes)
    data = load_training_frames(
        video, config.model.image_size, config.train.max_frames,
        boxes=None if boxes is None else boxes[1], box_frame_indices=None if boxes is None else boxes[0],
    )
    log.info("prepared %d frames in %.1f s", len(data.frames), time.monotonic() - started)
    aligned = boxes is not None and boxes[1].shape[1] == 5
    if config.data.any_orientation == "auto":  # resolved once; the checkpoint keeps the decision
        orientation = "on" if boxes is not None and crop is None and not aligned else "off"
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, any_orientation=orientation))
        log.info("any orientation: %s (%s)", orientation,
                 "subject localised" if orientation == "on" else
                 "crops turned to the heading" if aligned else "whole-frame subject or fixed crop")
    any_orientation = config.data.any_orientation == "on"
    pairs = FramePairs(data, config.train.min_gap, config.train.max_gap, config.train.flip,
                       config.train.color_jitter, seed=config.train.seed + start_step,
                       rotate90=any_orientation, flip_vertical=aligned)
    network = FOMM(config.model)
    optimizer_state = None
    if states is not None:
        network.detector.load_state_dict(states["detector"])
        network.dense_motion.load_state_dict(states["dense_motion"])
        network.generator.load_state_dict(states["generator"])
        if network.background is not None:
            network.background.load_state_dict(states["background"])
        optimizer_state = states.get("optimizer")
    box_side = float(np.median(data.boxes[:, 2] - data.boxes[:, 0]))
    meta = {
        "video": str(video),
        "localized": boxes is not None and crop is None,
        "fixed_crop": [float(v) for v in crop] if crop is not None else [],
        "box_side": box_side,
        "aligned": aligned,
        "num_training_frames": int(len(data.frames)),
    }
    trainer = Trainer(network, config, pairs, device, out_dir, meta, start_step, optimizer_state)
    trainer.fit(config.train.steps, config.train.minutes, progress)
    return Model(trainer.model, config, trainer.meta, trainer.step_count, device)


def load_model(
    checkpoint: str | os.PathLike, device: str | torch.device | None = None,
    backend: str = "auto", engine: str | os.PathLike | None = None, threads: int | None = None,
) -> Model | DetectorModel:
    """Load a trained model from a checkpoint written by :func:`train` (``weights_only`` loading).

    A teacher loads as a :class:`Model` (on ``backend`` ``auto`` or ``torch``). A student checkpoint
    (``fomm-kp distill``; ``auto`` runs it on ONNX Runtime on the CPU), an exported ``.onnx`` file,
    or another ``backend`` (``onnx``, ``tensorrt``; ``engine`` = the .onnx/.engine file to run) gives
    a :class:`fomm_kp.backends.DetectorModel`, which tracks like a :class:`Model`.
    """
    if backend in ("auto", "torch") and engine is None and Path(checkpoint).suffix.lower() != ".onnx":
        _, _, _, meta = read_checkpoint(checkpoint)
        if meta.get("kind", "teacher") == "teacher":
            return Model.load(checkpoint, device)
    from fomm_kp.runtime.backends import load_for_tracking

    return load_for_tracking(checkpoint, backend, engine, device, threads)


def track(
    video: str | os.PathLike,
    model: Model | str | os.PathLike,  # or a fomm_kp.backends.DetectorModel (any runtime backend)
    out: str | os.PathLike | None = None,
    overlay: str | os.PathLike | None = None,
    crop: Box | None = None,
    localize: str | None = None,
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
    batch_size: int = 64,
    trail: int = 12,
    progress: Callable[[int, int], None] | None = None,
) -> Tracks:
    """Track keypoints through ``video``; returns :class:`~fomm_kp.tracks.Tracks` in original-frame pixels.

    Streams the video in batches (constant memory whatever its length). ``out`` saves the tracks
    (``.npz``/``.csv``/``.slp``/``.nwb``); ``overlay`` writes a video with keypoints and short
    trails. Localisation follows the model's training (``localize`` = ``on``/``off``/``auto``
    overrides it); a fixed ``crop`` box overrides both. ``progress(done, total)`` is called per batch.
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    info = probe(video)
    config = model.config
    if localize is None:
        localize = "on" if model.meta.get("localized") else "off"
    if crop is None and model.meta.get("fixed_crop"):
        crop = model.meta["fixed_crop"]
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, localize=localize))
    side = int(round(model.meta["box_side"])) if model.meta.get("localized") and localize != "auto" else None
    aligned = bool(model.meta.get("aligned", False)) and crop is None
    located = subject_boxes(video, config, crop, side=side, align=aligned)
    box_of = {}
    if located is not None:  # frames where the subject was not found get no box: NaN keypoints, score 0
        box_of = {int(i): (b if f else None) for i, b, f in zip(located[0], located[1], located[2])}
    whole = np.array([0, 0, info.width, info.height] + ([0.0] if aligned else []), dtype=np.float64)
    last = info.num_frames if stop is None else min(stop, info.num_frames)
    total = len(range(start, last, stride))
    if total == 0:
        raise FommError(f"no frames to track in {video} (start={start}, stop={stop}, frames={info.num_frames})")
    k = model.num_keypoints
    keypoints = np.full((total, 1, k, 2), np.nan, dtype=np.float32)
    scores = np.zeros((total, 1, k), dtype=np.float32)
    jacobians = np.full((total, 1, k, 2, 2), np.nan, dtype=np.float32)
    covariances = np.full((total, 1, k, 2, 2), np.nan, dtype=np.float32)
    frame_indices = np.zeros(total, dtype=np.int64)
    colors = keypoint_colors(k)
    writer = VideoWriter(overlay, info.fps / stride) if overlay is not None else None
    # Small videos are enlarged in the overlay (integer factor) so that dots and trails stay legible.
    zoom = max(1, 384 // max(info.width, info.height))
    history: list[np.ndarray] = []
    row = 0
    batch_frames, batch_crops, batch_boxes, batch_index = [], [], [], []

    def flush() -> None:
        nonlocal row
        if not batch_crops:
            return
        found = np.array([b is not None for b in batch_boxes])
        boxes = np.stack([b if b is not None else whole for b in batch_boxes])
        det = model.detect_resized(np.stack(batch_crops), boxes)
        n = len(batch_crops)
        sl = slice(row, row + n)
        keypoints[sl, 0] = np.where(found[:, None, None], det.keypoints, np.nan)
        scores[sl, 0] = np.where(found[:, None], det.scores, 0.0)
        jacobians[sl, 0] = np.where(found[:, None, None, None], det.jacobians, np.nan)
        covariances[sl, 0] = np.where(found[:, None, None, None], det.covariances, np.nan)
        frame_indices[sl] = batch_index
        if writer is not None:
            for i, frame in enumerate(batch_frames):
                points = (keypoints[row + i, 0] + 0.5) * zoom - 0.5
                history.append(points)
                del history[:-trail]
                if zoom > 1:
                    frame = np.repeat(np.repeat(frame, zoom, axis=0), zoom, axis=1)
                drawn = draw_trails(frame, np.stack(history), colors)
                writer.write(draw_keypoints(drawn, points, colors))
        row += n
        batch_frames.clear(), batch_crops.clear(), batch_boxes.clear(), batch_index.clear()
        if progress is not None:
            progress(row, total)

    try:
        for index, frame in iter_frames(video, start=start, stop=last, stride=stride):
            box = box_of.get(index) if located is not None else whole
            batch_crops.append(resize_frame(crop_frame(frame, box if box is not None else whole), model.detector_size))
            batch_boxes.append(box)
            batch_index.append(index)
            if writer is not None:
                batch_frames.append(frame)
            if len(batch_crops) >= batch_size:
                flush()
        flush()
    except BaseException:
        if writer is not None:
            writer.close(success=False)
        raise
    if writer is not None:
        writer.close()
    if row < total:  # the container held fewer frames than its packets suggested
        keypoints, scores, jacobians, covariances, frame_indices = (
            a[:row] for a in (keypoints, scores, jacobians, covariances, frame_indices)
        )
    result = Tracks(
        keypoints=keypoints, scores=scores, frame_indices=frame_indices, fps=info.fps,
        jacobians=jacobians, covariances=covariances, video=str(video),
        keypoint_names=tuple(f"kp{i}" for i in range(k)), subject_names=("subject0",),
    )
    if out is not None:
        save_tracks(result, out)
    return result
