"""``fomm-kp demo``: the whole pipeline on the bundled sample clip, in a few minutes on a CPU.

Train on the sample, track it, animate a frame of it with the motion of another part of it, and
score behaviour from a few labelled segments of it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from fomm_kp import api
from fomm_kp.animation.render import PanelOptions, animate
from fomm_kp.behaviour.classifiers import save_classifier
from fomm_kp.behaviour.features import motion_features, save_features
from fomm_kp.behaviour.fitting import fit_classifier
from fomm_kp.behaviour.frame_labels import classify
from fomm_kp.behaviour.plots import plot_keypoint_spectrogram
from fomm_kp.behaviour.report import score_labels
from fomm_kp.behaviour.segments import read_segments, video_key
from fomm_kp.behaviour.signals import resolve_config
from fomm_kp.errors import FommError
from fomm_kp.files import rebased, staged_folder
from fomm_kp.progress import Progress
from fomm_kp.runtime import Model
from fomm_kp.tracks import Tracks, save_tracks
from fomm_kp.video import FrameRange, probe

__all__ = ["run_demo", "sample_video", "sample_labels", "animation_demo", "behaviour_demo", "DEMO_MINUTES",
           "DEMO_MAX_STEPS"]

log = logging.getLogger(__name__)

DEMO_MINUTES = 8.0  # training budget; the whole demo stays well inside 20 minutes on 2 cores
DEMO_MAX_STEPS = 3000
SAMPLES = Path(__file__).resolve().parent / "samples"


def sample_video() -> Path:
    """The bundled clip: a crawling C. elegans (MIT licence, see ``fomm_kp/samples``)."""
    return SAMPLES / "worm.mp4"


def sample_labels() -> Path:
    """A few labelled segments of the sample (crawl, coil) for the behaviour part of the demo."""
    return SAMPLES / "worm_labels.csv"


def animation_demo(model: Model, video: str | os.PathLike, out_dir: str | os.PathLike, max_frames: int = 150,
                   progress: Progress | None = None) -> dict[str, Path]:
    """Animate a frame of ``video`` with the motion of another part of it.

    The source is the frame at 10 % of the clip; the driving frames start at its middle (at most
    ``max_frames`` of them; about 0.3 s per frame at 128 px on two CPU cores). Writes
    ``animation.mp4`` (source | driving | result, with keypoints) into ``out_dir`` and returns
    ``{"animation": path}``.
    """
    info = probe(video)
    if info.num_frames < 4:
        raise FommError(f"{video} has {info.num_frames} frames: the animation demo needs at least 4")
    out = Path(out_dir) / "animation.mp4"
    start = info.num_frames // 2
    panels = PanelOptions(side_by_side=True, show_keypoints=True, size=max(128, model.config.model.image_size))
    animate(video, video, model, out, panels=panels, source_frame=info.num_frames // 10,
            frames=FrameRange(start, min(info.num_frames, start + max_frames)), progress=progress)
    return {"animation": out}


def behaviour_demo(tracks: Tracks, labels_csv: str | os.PathLike, out_dir: str | os.PathLike,
                   kind: str = "logistic", min_bout_seconds: float = 0.5) -> dict[str, Path]:
    """Features → classifier from a few labelled segments → per-frame labels → score report with plots.

    Writes into ``out_dir``: ``features.npz``, ``spectrogram.png``, ``classifier.npz`` and the score
    report (:func:`fomm_kp.behaviour.report.score_labels`); returns the written paths by role.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = resolve_config(tracks)
    feats = motion_features(tracks, config)
    written = {"features": save_features(feats, out / "features.npz"),
               "spectrogram": plot_keypoint_spectrogram(tracks, out / "spectrogram.png", config)}
    video = video_key(tracks.video)
    mine = [s for s in read_segments(labels_csv) if video_key(s.video) == video]
    if not mine:
        raise FommError(f"{labels_csv} has no segment for video '{video}' (video column must name it)")
    clf = fit_classifier(feats, mine, kind=kind)
    written["classifier"] = save_classifier(clf, out / "classifier.npz")
    report = score_labels({video or "video": classify(feats, clf, min_bout_seconds=min_bout_seconds)}, out)
    written.update(report_csv=report.report_csv, report_json=report.report_json, time_budget=report.time_budget)
    written.update({f"ethogram_{name}": path for name, path in report.ethograms.items()})
    return written


def run_demo(
    out_dir: str | Path,
    minutes: float | None = None,
    steps: int | None = None,
    train_fn: Callable | None = None,
    track_fn: Callable | None = None,
) -> dict[str, Path]:
    """Train on the sample, track it, and write checkpoint, preview, tracks (npz + csv) and overlay,
    the animation and the behaviour report.

    ``train_fn``/``track_fn`` default to :func:`fomm_kp.train`/:func:`fomm_kp.track`; the CLI passes
    wrappers that draw progress bars. Returns the written paths by name.
    """
    video = sample_video()
    train_fn = train_fn or api.train
    track_fn = track_fn or api.track
    if minutes is None and steps is None:
        minutes, steps = DEMO_MINUTES, DEMO_MAX_STEPS
    with staged_folder(out_dir) as stage:  # everything is moved into out_dir at the end, or nothing is
        model = train_fn(video, stage, config="cpu", steps=steps if steps is not None else DEMO_MAX_STEPS,
                         minutes=minutes if minutes is not None else 0.0)
        tracks = track_fn(video, model, out=stage / "tracks.npz", overlay=stage / "overlay.mp4")
        save_tracks(tracks, stage / "tracks.csv")
        written = {name: stage / file for name, file in (("checkpoint", "checkpoint.pt"), ("preview", "preview.png"),
                   ("tracks", "tracks.npz"), ("tracks_csv", "tracks.csv"), ("overlay", "overlay.mp4"))}
        log.info("demo: animating a frame of the sample with the motion of another part of it")
        written.update(animation_demo(model, video, stage))
        log.info("demo: features, a classifier from %s, per-frame labels and a score report", sample_labels().name)
        written.update({f"behaviour_{k}": v for k, v in behaviour_demo(tracks, sample_labels(), stage / "behaviour").items()})
    written = rebased(written, stage, Path(out_dir))
    return written
