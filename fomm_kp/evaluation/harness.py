"""The keypoint-evaluation harness: models and baselines run on labelled images, then scored.

A model trained on subject crops sees each labelled image cropped around the subject, found against
an empty-scene background, with the model's box side (:func:`fomm_kp.localize.crop_rule.image_crops`);
where the subject is not found its keypoints are NaN (the regression then predicts the training
mean there: misses cost). Beside every model: the mean pose, blob moments of the foreground, the
blob centroid and an 8×8 grey thumbnail (:func:`baseline_features`), and optionally an untrained
network of the same config (:func:`untrained_like`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image

from fomm_kp.config import LocalizeConfig
from fomm_kp.crops import mask_not_found
from fomm_kp.errors import FommError
from fomm_kp.evaluation.keypoints import CrossValidation, KeypointEvaluation, PoseFeatures, evaluate_keypoints
from fomm_kp.evaluation.labels import LabelledFrames, load_labels
from fomm_kp.localize.background import Background, background_from_frames, estimate_background
from fomm_kp.localize.blobs import blob_moments
from fomm_kp.localize.crop_rule import image_crops
from fomm_kp.models import FOMM
from fomm_kp.progress import Progress, report
from fomm_kp.runtime import Detector, Model, load_model
from fomm_kp.tracks import Tracks, load_tracks
from fomm_kp.video import iter_frames

__all__ = [
    "thumbnails", "baseline_features", "detect_keypoints", "model_boxes", "untrained_like", "evaluate_model_on_labels",
    "labelled_images", "track_features", "evaluate_labels",
]

log = logging.getLogger(__name__)


def thumbnails(frames: np.ndarray, size: int = 8) -> np.ndarray:
    """Grey ``size``×``size`` thumbnails of uint8 frames ``(M, H, W, 3)`` → float32 ``(M, size²)``
    in [0, 1] (area averaging over the whole frame)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise FommError(f"frames must have shape (M, H, W, 3), got {frames.shape}")
    out = np.empty((len(frames), size * size), dtype=np.float32)
    for i, frame in enumerate(frames):
        grey = Image.fromarray(frame).convert("L").resize((size, size), Image.BOX)
        out[i] = np.asarray(grey, dtype=np.float32).ravel() / 255.0
    return out


def baseline_features(frames: np.ndarray, background: Background, config: LocalizeConfig | None = None,
                      ) -> dict[str, PoseFeatures]:
    """The model-free baselines for uint8 frames ``(M, H, W, 3)``: ``blob moments`` (centroid and
    both principal-axis ends of the whole foreground component, ends ordered by its skew),
    ``blob centroid`` alone and ``thumbnail 8x8``."""
    # The whole foreground, tail and all: what a lab would measure without a model.
    config = LocalizeConfig(core_fraction=0.0) if config is None else config
    moments = np.stack([blob_moments(frame, background, config) for frame in frames])
    return {
        "blob moments": PoseFeatures(points=moments),
        "blob centroid": PoseFeatures(points=moments[:, :1]),
        "thumbnail 8x8": PoseFeatures(extra=thumbnails(frames)),
    }


def detect_keypoints(
    model: Detector, frames: np.ndarray, boxes: np.ndarray | None = None, batch_size: int = 16,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model.detect`` over uint8 frames ``(M, H, W, 3)`` in batches, with optional crop boxes
    ``(M, 4)`` (or ``(M, 5)``, turned). Returns keypoints float32 ``(M, K, 2)`` in frame pixels and
    scores float32 ``(M, K)``."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise FommError(f"frames must be uint8 (M, H, W, 3), got {frames.dtype} {frames.shape}")
    if boxes is not None and np.shape(boxes) not in ((len(frames), 4), (len(frames), 5)):
        raise FommError(f"boxes must have shape ({len(frames)}, 4) or ({len(frames)}, 5), got {np.shape(boxes)}")
    keypoints, scores = [], []
    for start in range(0, len(frames), batch_size):
        stop = min(start + batch_size, len(frames))
        detections = model.detect(frames[start:stop], None if boxes is None else np.asarray(boxes[start:stop], np.float64))
        keypoints.append(np.asarray(detections.keypoints, dtype=np.float32))
        scores.append(np.asarray(detections.scores, dtype=np.float32))
        report(progress, stop, len(frames), "detecting")
    return np.concatenate(keypoints), np.concatenate(scores)


def model_boxes(model: Detector, frames: np.ndarray, background: Background,
                ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Crop boxes ``(M, 4)`` (``(M, 5)``, turned to the heading, for a model trained so) and found
    flags ``(M,)`` the model looks at in labelled images, each localised on its own against
    ``background``; ``(None, None)`` for a whole-frame model."""
    located = image_crops(frames, model.crop, model.config.data, background)
    return (None, None) if located is None else located


def untrained_like(model: Model, seed: int = 0) -> Model:
    """A network of the same config and metadata (so the same crops) with fresh random weights:
    the reference a trained detector must clearly beat."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        network = FOMM(model.config.model)
    finally:
        torch.random.set_rng_state(generator_state)
    return Model(network, model.config, dict(model.meta), 0, model.device)


def _model_features(name: str, model: Detector, frames: np.ndarray, background: Background,
                    notes: dict[str, Any], progress: Progress | None) -> PoseFeatures:
    boxes, found = model_boxes(model, frames, background)
    keypoints, scores = detect_keypoints(model, frames, boxes, progress=progress)
    if found is not None:
        keypoints, scores = mask_not_found(keypoints, scores, found)
        notes[f"{name}: subject boxes"] = {"side": int(round(float(boxes[0, 2] - boxes[0, 0]))), "found": int(found.sum())}
    else:
        notes[f"{name}: subject boxes"] = "none (whole frames)"
    return PoseFeatures(points=keypoints, confidence=scores)


def evaluate_model_on_labels(
    labelled: LabelledFrames,
    models: Mapping[str, Detector],
    frames: np.ndarray | None = None,
    background: Background | None = None,
    localize_config: LocalizeConfig | None = None,
    protocol: CrossValidation = CrossValidation(),
    extra_methods: Mapping[str, PoseFeatures] | None = None,
    progress: Progress | None = None,
) -> KeypointEvaluation:
    """Run each model (name → :class:`~fomm_kp.runtime.detector.Detector`) and the baselines on labelled
    images and score them all with :func:`~fomm_kp.evaluation.keypoints.evaluate_keypoints`.

    Args:
        labelled: the labels (images are read from ``labelled.image_paths`` unless ``frames``).
        frames: uint8 ``(M, H, W, 3)`` the labelled images, when already in memory.
        background: for blob moments and subject boxes; default: the median of the labelled
            images themselves (right when the subject moves between them; check otherwise).
        localize_config: how that median is reduced (default settings).
        extra_methods: more feature sets to score beside them (e.g. keypoints from tracks).
    """
    frames = labelled.load_images() if frames is None else np.asarray(frames)
    if len(frames) != len(labelled):
        raise FommError(f"{len(frames)} images for {len(labelled)} labelled frames")
    notes: dict[str, Any] = {"labels": labelled.source}
    if background is None:
        background = background_from_frames(frames, LocalizeConfig() if localize_config is None else localize_config)
        notes["background"] = "median of the labelled images"
    methods = {name: _model_features(name, model, frames, background, notes, progress) for name, model in models.items()}
    methods.update(extra_methods or {})
    baselines = baseline_features(frames, background)
    found = int(np.all(np.isfinite(baselines["blob centroid"].points), axis=(1, 2)).sum())
    notes["blob found"] = f"{found} of {len(frames)} images"
    if found < 0.9 * len(frames):
        log.warning("the subject stands out from the background in only %d of %d labelled images: "
                    "give a background video of the empty scene", found, len(frames))
    methods.update(baselines)
    return evaluate_keypoints(labelled.points, methods, labelled.part_names, protocol, notes=notes)


def labelled_images(labelled: LabelledFrames, video: str | os.PathLike | None = None) -> np.ndarray:
    """The images of labelled frames, uint8 ``(M, H, W, 3)``: the label file's image files when they
    exist, else frames ``labelled.frame_indices`` of ``video``."""
    if all(p and Path(p).is_file() for p in labelled.image_paths) and video is None:
        return labelled.load_images()
    if video is None:
        raise FommError(f"the labelled images of {labelled.source} are not on disk: give the video they come from")
    indices = labelled.frame_indices
    if (indices < 0).any():
        raise FommError(f"{labelled.source}: frame indices unknown for some labelled images; cannot take them from {video}")
    wanted = {int(i) for i in indices}
    found: dict[int, np.ndarray] = {}
    for index, frame in iter_frames(video, stop=int(indices.max()) + 1):
        if index in wanted:
            found[index] = frame
    missing = sorted(wanted - set(found))
    if missing:
        raise FommError(f"{video} has no frame {missing[0]} (labelled in {labelled.source})")
    return np.stack([found[int(i)] for i in indices])


def track_features(tracks: Tracks, labelled: LabelledFrames, subject: int = 0) -> PoseFeatures:
    """Keypoints and scores of one subject of ``tracks`` at the labelled frames (by frame index)."""
    row_of = {int(f): i for i, f in enumerate(tracks.frame_indices)}
    missing = [int(f) for f in labelled.frame_indices if int(f) not in row_of]
    if missing:
        raise FommError(f"{len(missing)} labelled frames are not in the tracks, e.g. frame {missing[0]}")
    if not 0 <= subject < tracks.keypoints.shape[1]:
        raise FommError(f"subject {subject} not in tracks with {tracks.keypoints.shape[1]} subjects")
    rows = [row_of[int(f)] for f in labelled.frame_indices]
    return PoseFeatures(points=tracks.keypoints[rows, subject], confidence=tracks.scores[rows, subject])


def evaluate_labels(
    labels: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    tracks: str | os.PathLike | None = None,
    video: str | os.PathLike | None = None,
    untrained: bool = True,
    protocol: CrossValidation = CrossValidation(),
    individual: str | None = None,
    background: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> KeypointEvaluation:
    """Keypoint accuracy against a label file (DeepLabCut ``.csv``/``.h5`` or SLEAP ``.slp``):
    a model (``checkpoint``, with an untrained network of the same shape beside it when
    ``untrained``) run on the labelled images, and/or ``tracks`` read at the labelled frame indices,
    next to the mean-pose, blob-moment and thumbnail baselines. With neither, baselines only.

    ``video``: where to take the labelled frames from when the label file's images are not on
    disk (SLEAP), or the tracks' video. ``background``: a video or image folder of the same
    camera whose median is the empty scene (default: the median of the labelled images, which
    contains the subject where it sits in most of them). ``individual``: which animal of a
    multi-animal label file.
    """
    labelled = load_labels(labels, individual)
    extra: dict[str, PoseFeatures] = {}
    if tracks is not None:
        loaded = load_tracks(tracks)
        extra["tracks"] = track_features(loaded, labelled)
        if video is None and loaded.video and not all(labelled.image_paths):
            video = loaded.video
    frames = labelled_images(labelled, video)
    models: dict[str, Detector] = {}
    if checkpoint is not None:
        model = load_model(checkpoint)
        models["fomm_kp"] = model
        if untrained:
            models["untrained (same config)"] = untrained_like(model, protocol.seed)
    scene = None if background is None else estimate_background(background, LocalizeConfig())
    evaluation = evaluate_model_on_labels(labelled, models, frames, scene, protocol=protocol, extra_methods=extra,
                                          progress=progress)
    if background is not None:
        evaluation.notes["background"] = f"median of {background}"
    return evaluation
