"""The public verbs of the main job: ``train`` a detector on one clip or several, ``load_model``, ``track`` a video.

    model = fomm_kp.train("mouse.mp4", "runs/mouse", minutes=10)
    tracks = fomm_kp.track("mouse.mp4", model, overlay="overlay.mp4")

``train`` is written here: it joins the crop rule, the training frames and the trainer into a run.
``load_model`` and ``track`` come from :mod:`fomm_kp.runtime`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from fomm_kp.checkpoint import Checkpoint, load_weights, read_checkpoint
from fomm_kp.config import Config, builtin_config, load_config
from fomm_kp.crops import CropSettings
from fomm_kp.errors import FommError
from fomm_kp.files import remove_stale_temporaries
from fomm_kp.localize.crop_rule import training_crops
from fomm_kp.models import FOMM
from fomm_kp.progress import Progress
from fomm_kp.runtime import Model, choose_device, load_model, track
from fomm_kp.training.clips import ClipPairs, training_clips
from fomm_kp.training.dataset import FramePairs, TrainingFrames, foreground_masks, load_training_frames
from fomm_kp.training.distributed import session
from fomm_kp.training.trainer import Trainer

__all__ = ["train", "load_model", "track", "EXISTING"]

log = logging.getLogger(__name__)

# The files train writes into its out_dir (atomically: a killed run may leave their temporaries).
TRAINING_FILES = ("checkpoint.pt", "preview.png", "animation.png")
# What train does with a checkpoint already in its out_dir: refuse to touch it, continue it, replace it.
EXISTING = ("refuse", "resume", "overwrite")


def check_out_dir(checkpoint: Path, existing: str, config_given: bool) -> None:
    """Refuse a training run that would replace ``checkpoint`` unasked, or resume what is not there."""
    if existing not in EXISTING:
        raise FommError(f"existing must be one of {', '.join(EXISTING)}, got {existing!r}")
    resume = existing == "resume"
    if checkpoint.exists() and not checkpoint.is_file():
        raise FommError(f"{checkpoint} is not a file: choose another --out")
    if resume and not checkpoint.is_file():
        raise FommError(f"checkpoint not found: {checkpoint}")
    if checkpoint.exists() and existing == "refuse":
        raise FommError(f"{checkpoint} already holds a trained model: pass --resume to continue it, "
                        "--overwrite to replace it, or choose another --out")
    if resume and config_given:
        raise FommError("a resumed run keeps its checkpoint's config: leave out --config")


def default_config(device_type: str) -> Config:
    """The config used when none is given: ``cpu`` on CPUs, ``gpu_default`` on CUDA GPUs (logged)."""
    name = "gpu_default" if device_type == "cuda" else "cpu"
    config = builtin_config(name)
    log.info("config: %s (no --config given; %d-px frames, detector on %d px, batch %d)", name,
             config.model.image_size, config.model.detector.input_size, config.train.batch_size)
    return config


def _resumable(checkpoint: Path) -> Checkpoint:
    """The checkpoint a run resumes: its weights must fit its own config and its optimizer state
    (when it has one) the network; checked before any frame is read."""
    resumed = read_checkpoint(checkpoint)
    network = FOMM(resumed.config.model)
    load_weights(network.parts(), resumed.state_dicts, checkpoint)
    state = resumed.state_dicts.get("optimizer")
    if state is not None:
        optimizer = torch.optim.Adam(network.parameters())
        try:
            optimizer.load_state_dict(state)
            fits = all(v.shape == p.shape for p, st in optimizer.state.items() for v in st.values()
                       if torch.is_tensor(v) and v.dim() > 0)
        except (ValueError, KeyError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
            raise FommError(f"{checkpoint}: its optimizer state does not fit the network "
                            f"({type(exc).__name__}: {' '.join(str(exc).split())[:100]})") from None
        if not fits:
            raise FommError(f"{checkpoint}: its optimizer state does not fit the network (other shapes)")
    return resumed


def run_config(checkpoint: Path, config: Config | str | os.PathLike | None, existing: str,
               overrides: dict[str, float | int | None], device_type: str = "cpu") -> tuple[Config, Checkpoint | None]:
    """The config of a run into ``checkpoint``'s folder (with ``overrides`` of ``train.*``) and the
    checkpoint it resumes, if any; everything that would make the run fail is refused here, first.
    No config given: the default for ``device_type`` (:func:`default_config`)."""
    check_out_dir(checkpoint, existing, config is not None)
    resumed = None
    if existing == "resume":
        resumed = _resumable(checkpoint)
        config = resumed.config
    elif config is None:
        config = default_config(device_type)
    elif not isinstance(config, Config):
        config = load_config(config)
    given = {key: value for key, value in overrides.items() if value is not None}
    if given:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, **given))
    start = resumed.step if resumed is not None else 0
    if config.train.steps <= start and config.train.minutes <= 0:
        raise FommError(f"nothing to do: the checkpoint is at step {start} and steps is {config.train.steps}")
    return config, resumed


def _orientation(config: Config, crop: CropSettings) -> Config:
    """``data.any_orientation: auto`` resolved once (the checkpoint keeps the decision): on for a
    localised subject whose crops are not turned to its heading."""
    if config.data.any_orientation != "auto":
        return config
    orientation = "on" if crop.localized and not crop.aligned else "off"
    log.info("any orientation: %s (%s)", orientation,
             "subject localised" if orientation == "on" else
             "crops turned to the heading" if crop.aligned else "whole-frame subject or fixed crop")
    return dataclasses.replace(config, data=dataclasses.replace(config.data, any_orientation=orientation))


def _foreground(config: Config, distinct: bool) -> Config:
    """``data.foreground: auto`` resolved once (the checkpoint keeps the decision): on when one
    distinct subject stands out in every training clip, so that its foreground is the subject."""
    if config.data.foreground != "auto":
        return config
    foreground = "on" if distinct else "off"
    log.info("foreground prior: %s (%s)", foreground if config.loss.foreground > 0 else "off (weight 0)",
             "one distinct subject stands out" if distinct else "the change is spread over several parts")
    return dataclasses.replace(config, data=dataclasses.replace(config.data, foreground=foreground))


def _pairs(data: TrainingFrames, config: Config, crop: CropSettings) -> FramePairs:
    train = config.train
    return FramePairs(data, train.min_gap, train.max_gap, train.flip, train.color_jitter, seed=train.seed,
                      rotate90=config.data.any_orientation == "on", flip_vertical=crop.aligned)


def _clip_length(data: TrainingFrames) -> float:
    """A clip's length in original frames (stored frames × their stride), its weight among clips."""
    stride = float(np.median(np.diff(data.frame_indices))) if len(data.frame_indices) > 1 else 1.0
    return len(data.frames) * stride


def _all_pairs(clips: list[TrainingFrames], config: Config, crop: CropSettings) -> FramePairs | ClipPairs:
    """One clip: its pairs as ever; several: pairs within each clip, clips drawn by length."""
    if len(clips) == 1:
        return _pairs(clips[0], config, crop)
    return ClipPairs([_pairs(c, config, crop) for c in clips], [_clip_length(c) for c in clips],
                     seed=config.train.seed)


def _training_data(videos: list[Path], config: Config, crop: Sequence[float] | None,
                   ) -> tuple[list[TrainingFrames], CropSettings, bool]:
    """Each clip's training frames, cropped by one rule (every clip must get the same crop decision),
    and whether one distinct subject stands out in every clip (:attr:`LocalizeDecision.distinct`)."""
    clips, settings, distinct = [], None, True
    for video in videos:
        located, found, background, clip_distinct = training_crops(video, config.data, crop)
        rule = (found.localized, found.aligned, found.fixed_crop)
        if settings is not None and rule != (settings.localized, settings.aligned, settings.fixed_crop):
            raise FommError(f"{video} gets other crops than {videos[0]} (localised {found.localized}, aligned "
                            f"{found.aligned}, fixed crop {found.fixed_crop}): set data.localize, data.align and "
                            "data.motion_crop to on or off, or give --crop")
        settings = settings or found  # a localised model keeps the first clip's empty scene
        data = load_training_frames(video, config.model.frame_size, config.train.max_frames, located)
        # Foreground masks: the foreground prior's target and the log's "on the subject" diagnostic.
        distinct = distinct and clip_distinct
        data = dataclasses.replace(data, masks=foreground_masks(data, background.scene()))
        log.info("%s: %.1f%% of training pixels differ from the static scene", video, 100.0 * data.masks.mean())
        clips.append(data)
    boxes = np.concatenate([c.boxes for c in clips])
    return clips, dataclasses.replace(settings, box_side=float(np.median(boxes[:, 2] - boxes[:, 0]))), distinct


def train(
    video: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    config: Config | str | os.PathLike | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    crop: Sequence[float] | None = None,
    existing: Literal["refuse", "resume", "overwrite"] = "refuse",
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> Model:
    """Train a FOMM keypoint detector on one video or several, self-supervised; returns the trained model.

    ``video`` is a path or a list of paths; a folder of video files stands for those videos
    (:func:`fomm_kp.training.clips.training_clips`). With several clips each training pair is drawn
    within one clip, clips chosen in proportion to their length. Writes ``checkpoint.pt``
    (atomically, with its config and where the model looks) and ``preview.png`` into ``out_dir``.
    ``config`` None: the CPU default, or on a GPU the GPU default (:func:`default_config`).
    ``steps``/``minutes``/``seed`` override the config; ``crop`` fixes one box ``x0, y0, x1, y1``
    for every frame. A trained checkpoint already in ``out_dir`` is never replaced unasked:
    ``existing="resume"`` continues it (with its config), ``existing="overwrite"`` replaces it.
    Started by torchrun (``RANK``/``WORLD_SIZE`` set), each process trains on its share of the
    batch with DistributedDataParallel and rank 0 writes.
    """
    out_dir, videos = Path(out_dir), training_clips(video)
    with session(choose_device(device)) as (ranks, device):
        config, resumed = run_config(out_dir / "checkpoint.pt", config, existing,
                                     {"steps": steps, "minutes": minutes, "seed": seed}, device.type)
        if resumed is not None:
            log.info("resuming from %s at step %d", out_dir / "checkpoint.pt", resumed.step)
        if ranks.writer:
            for stale in remove_stale_temporaries(out_dir, TRAINING_FILES):
                log.info("removed %s, left by a run that was killed while writing", stale)
        start_step = resumed.step if resumed is not None else 0
        if config.train.num_threads > 0:
            torch.set_num_threads(config.train.num_threads)
        torch.manual_seed(config.train.seed + start_step)
        np.random.seed(config.train.seed + start_step)
        started = time.monotonic()
        clips, settings, distinct = _training_data(videos, config, crop)
        frames = sum(len(c.frames) for c in clips)
        log.info("prepared %d frames of %d clip(s) in %.1f s", frames, len(clips), time.monotonic() - started)
        config = _foreground(_orientation(config, settings), distinct)
        network = FOMM(config.model)
        if resumed is not None:
            load_weights(network.parts(), resumed.state_dicts, out_dir / "checkpoint.pt")
        meta = {"video": str(videos[0]), **settings.to_meta(), "num_training_frames": int(frames)}
        if len(videos) > 1:
            meta["videos"] = [str(v) for v in videos]
        trainer = Trainer(network, config, _all_pairs(clips, config, settings), device, out_dir, meta, start_step,
                          None if resumed is None else resumed.state_dicts.get("optimizer"), ranks)
        trainer.fit(config.train.steps, config.train.minutes, progress)
    return Model(trainer.model, config, trainer.meta, trainer.step_count, device)
