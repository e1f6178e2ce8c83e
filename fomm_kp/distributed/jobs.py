"""The jobs that run over many videos: tracking, features, per-frame behaviour labels.

Each is a small frozen record (paths and settings) that :func:`fomm_kp.distributed.run_many` sends
to its workers; each worker loads what it needs (the detector, the classifier) itself. Every output
goes to ``out_dir / (source stem + suffix)`` and is written atomically by the library's writers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fomm_kp.behaviour.classifiers import load_classifier
from fomm_kp.behaviour.features import motion_features, save_features
from fomm_kp.behaviour.report import load_source
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.runtime import load_model, track
from fomm_kp.tracks import load_tracks, save_tracks
from fomm_kp.tracks.smoothing import Smoothing, smooth_tracks
from fomm_kp.video import FrameRange

__all__ = ["TrackJob", "FeaturesJob", "LabelJob"]


@dataclass(frozen=True)
class TrackJob:
    """Track a video with the detector in ``checkpoint``; tracks go to ``out_dir/<stem><suffix>``
    (``.npz``, ``.csv``, ``.slp`` or ``.nwb``). The other fields are :func:`fomm_kp.track`'s options."""

    checkpoint: Path
    out_dir: Path
    suffix: str = ".npz"
    device: str | None = None
    backend: str = "auto"
    engine: Path | None = None
    localize: str | None = None
    crop: tuple[float, ...] | None = None
    frames: FrameRange = field(default_factory=FrameRange)
    batch_size: int = 64
    smoothing: Smoothing | None = None  # smooth the keypoints over time before writing them
    stage: str = "tracking"

    def outputs(self, source: Path) -> tuple[Path, ...]:
        return (self.out_dir / f"{source.stem}{self.suffix}",)

    def run(self, source: Path) -> int:
        model = load_model(self.checkpoint, device=self.device, backend=self.backend, engine=self.engine)
        out = self.outputs(source)[0]
        tracks = track(source, model, out=None if self.smoothing else out, crop=self.crop, localize=self.localize,
                       frames=self.frames, batch_size=self.batch_size)
        if self.smoothing is not None:
            save_tracks(smooth_tracks(tracks, self.smoothing), out)
        return tracks.num_frames


@dataclass(frozen=True)
class FeaturesJob:
    """Motion and frequency features of a tracks file; ``out_dir/<stem><suffix>`` (``.npz`` or ``.csv``)."""

    out_dir: Path
    config: FeatureConfig = field(default_factory=FeatureConfig)
    suffix: str = ".npz"
    stage: str = "features"

    def outputs(self, source: Path) -> tuple[Path, ...]:
        return (self.out_dir / f"{source.stem}{self.suffix}",)

    def run(self, source: Path) -> int:
        tracks = load_tracks(source)
        save_features(motion_features(tracks, self.config), self.outputs(source)[0])
        return tracks.num_frames


@dataclass(frozen=True)
class LabelJob:
    """Per-frame behaviour labels of a video (tracked with ``checkpoint``) or a tracks file, by the
    classifier in ``classifier``; ``out_dir/<stem>.csv`` (``frame,time_s,label,p_<class>...``)."""

    classifier: Path
    out_dir: Path
    checkpoint: Path | None = None
    min_bout_seconds: float = 0.0
    stage: str = "labelling"

    def outputs(self, source: Path) -> tuple[Path, ...]:
        return (self.out_dir / f"{source.stem}.csv",)

    def run(self, source: Path) -> int:
        labels = load_source(source, load_classifier(self.classifier), self.checkpoint, self.min_bout_seconds)
        labels.to_csv(self.outputs(source)[0])
        return len(labels.frame_indices)
