"""``fomm-kp demo``: the whole pipeline on the bundled sample clip, in a few minutes on a CPU."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from fomm_kp.tracks import save_tracks

__all__ = ["run_demo", "sample_video", "DEMO_MINUTES", "DEMO_MAX_STEPS"]

log = logging.getLogger(__name__)

DEMO_MINUTES = 8.0  # training budget; the whole demo stays well inside 20 minutes on 2 cores
DEMO_MAX_STEPS = 3000


def sample_video() -> Path:
    """The bundled clip: a crawling C. elegans (MIT licence, see ``fomm_kp/samples``)."""
    return Path(__file__).resolve().parent / "samples" / "worm.mp4"


def sample_labels() -> Path:
    """A few labelled segments of the sample (crawl, coil) for the behaviour part of the demo."""
    return Path(__file__).resolve().parent / "samples" / "worm_labels.csv"


def run_demo(
    out_dir: str | Path,
    minutes: float | None = None,
    steps: int | None = None,
    train_fn: Callable | None = None,
    track_fn: Callable | None = None,
) -> dict[str, Path]:
    """Train on the sample, track it, and write checkpoint, preview, tracks (npz + csv) and overlay.

    ``train_fn``/``track_fn`` default to :func:`fomm_kp.api.train`/:func:`fomm_kp.api.track`; the CLI
    passes wrappers that draw progress bars. Returns the written paths by name.
    """
    from fomm_kp import api

    out_dir = Path(out_dir)
    video = sample_video()
    train_fn = train_fn or api.train
    track_fn = track_fn or api.track
    if minutes is None and steps is None:
        minutes, steps = DEMO_MINUTES, DEMO_MAX_STEPS
    model = train_fn(video, out_dir, config="cpu", steps=steps if steps is not None else DEMO_MAX_STEPS,
                     minutes=minutes if minutes is not None else 0.0, overwrite=True)
    tracks = track_fn(video, model, out=out_dir / "tracks.npz", overlay=out_dir / "overlay.mp4")
    save_tracks(tracks, out_dir / "tracks.csv")
    written = {
        "checkpoint": out_dir / "checkpoint.pt",
        "preview": out_dir / "preview.png",
        "tracks": out_dir / "tracks.npz",
        "tracks_csv": out_dir / "tracks.csv",
        "overlay": out_dir / "overlay.mp4",
    }
    from fomm_kp.animation.render import animation_demo
    from fomm_kp.behaviour.score import behaviour_demo

    log.info("demo: animating a frame of the sample with the motion of another part of it")
    written.update(animation_demo(model, video, out_dir))
    log.info("demo: features, a classifier from %s, per-frame labels and a score report", sample_labels().name)
    written.update({f"behaviour_{k}": v for k, v in behaviour_demo(tracks, sample_labels(), out_dir / "behaviour").items()})
    return written
