"""The ``Tracks`` type every downstream part consumes.

Coordinates are pixels of the ORIGINAL video frame: origin at the top-left pixel, x right, y down;
NaN where a keypoint is missing. Shapes: T frames, N subjects, K keypoints.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.video import variable_rate

__all__ = ["Tracks", "DEFAULT_FPS", "resolve_fps"]

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0


@dataclass(frozen=True, eq=False)
class Tracks:
    """Keypoint tracks of N subjects with K keypoints over T frames.

    Attributes:
        keypoints: float32 ``(T, N, K, 2)``, x, y in original-frame pixels; NaN where missing.
        scores: float32 ``(T, N, K)`` confidences in [0, 1].
        jacobians: float32 ``(T, N, K, 2, 2)`` local affine per keypoint (pixel units), or None.
        covariances: float32 ``(T, N, K, 2, 2)`` spatial covariance in pixels², or None.
        frame_indices: int64 ``(T,)`` 0-based frame index of each row in ``video``.
        fps: frames per second of the source video.
        video: path of the source video ("" when unknown).
        keypoint_names: K names.
        subject_names: N names.
        metadata: how the tracks were made, as plain data (JSON types): e.g. ``smoothing``.
        identities: float32 ``(T, N)`` confidence in [0, 1] that each subject is the same animal as in
            the frames before (several subjects followed in one video; 0 where not found), or None.
        times: float64 ``(T,)`` seconds of each row from the video's first frame, from the video's
            own timestamps (they differ from ``frame_indices / fps`` in a variable-frame-rate
            video), or None when unknown.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    frame_indices: np.ndarray
    fps: float
    jacobians: np.ndarray | None = None
    covariances: np.ndarray | None = None
    video: str = ""
    keypoint_names: tuple[str, ...] = field(default=())
    subject_names: tuple[str, ...] = field(default=())
    metadata: Mapping[str, Any] = field(default_factory=dict)
    identities: np.ndarray | None = None
    times: np.ndarray | None = None

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.ndim != 4 or kp.shape[-1] != 2:
            raise FommError(f"Tracks.keypoints must have shape (T, N, K, 2), got {kp.shape}")
        t, n, k, _ = kp.shape
        scores = np.asarray(self.scores, dtype=np.float32)
        if scores.shape != (t, n, k):
            raise FommError(f"Tracks.scores must have shape {(t, n, k)}, got {scores.shape}")
        frames = np.asarray(self.frame_indices)
        whole = np.issubdtype(frames.dtype, np.integer) or (np.issubdtype(frames.dtype, np.floating)
                                                            and np.isfinite(frames).all() and (frames % 1 == 0).all())
        if frames.shape != (t,) or (t and not whole):
            raise FommError(f"Tracks.frame_indices must have shape ({t},) and hold integers, got {frames.dtype} "
                            f"{frames.shape}")
        frames = frames.astype(np.int64)
        if t and (frames[0] < 0 or (np.diff(frames) <= 0).any()):
            raise FommError("Tracks.frame_indices must be non-negative and increasing")
        if np.isinf(kp).any():
            raise FommError("Tracks.keypoints must be finite (NaN where missing), found infinite values")
        if t and (np.nanmin(scores, initial=0.0) < 0 or np.nanmax(scores, initial=0.0) > 1):
            raise FommError("Tracks.scores must lie in [0, 1]")
        try:
            fps = float(self.fps)
        except (TypeError, ValueError):
            fps = float("nan")
        if not np.isfinite(fps) or fps <= 0:
            raise FommError(f"Tracks.fps must be a positive number, got {self.fps!r}")
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "frame_indices", frames)
        for name in ("jacobians", "covariances"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float32)
                if value.shape != (t, n, k, 2, 2):
                    raise FommError(f"Tracks.{name} must have shape {(t, n, k, 2, 2)}, got {value.shape}")
                object.__setattr__(self, name, value)
        if self.identities is not None:
            identities = np.asarray(self.identities, dtype=np.float32)
            if identities.shape != (t, n) or not ((identities >= 0) & (identities <= 1)).all():
                raise FommError(f"Tracks.identities must be {(t, n)} confidences in [0, 1], got shape "
                                f"{identities.shape}")
            object.__setattr__(self, "identities", identities)
        names = tuple(self.keypoint_names) or tuple(f"kp{i}" for i in range(k))
        subjects = tuple(self.subject_names) or tuple(f"subject{i}" for i in range(n))
        if len(names) != k:
            raise FommError(f"Tracks has {k} keypoints but {len(names)} keypoint names")
        if len(subjects) != n:
            raise FommError(f"Tracks has {n} subjects but {len(subjects)} subject names")
        object.__setattr__(self, "keypoint_names", names)
        object.__setattr__(self, "subject_names", subjects)
        object.__setattr__(self, "fps", fps)
        if self.times is not None:
            times = np.asarray(self.times, dtype=np.float64)
            if times.shape != (t,) or not np.isfinite(times).all() or (np.diff(times) <= 0).any():
                raise FommError(f"Tracks.times must be {t} finite, increasing seconds, got shape {times.shape}")
            object.__setattr__(self, "times", times)
        object.__setattr__(self, "video", str(self.video))
        object.__setattr__(self, "metadata", dict(self.metadata))

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def num_subjects(self) -> int:
        return int(self.keypoints.shape[1])

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[2])

    def __len__(self) -> int:
        return self.num_frames

    @property
    def variable_rate(self) -> bool:
        """Whether the rows' times stray from ``frame_indices / fps`` by more than half a frame (the
        video's frame rate varies): then only :attr:`times` tells when each row happened."""
        return variable_rate(self.times, self.frame_indices, self.fps)

    def select_frames(self, index: slice | np.ndarray | Sequence[int]) -> "Tracks":
        """A new Tracks holding only the given rows (a slice, boolean mask or index array)."""
        return Tracks(
            keypoints=self.keypoints[index],
            scores=self.scores[index],
            frame_indices=self.frame_indices[index],
            fps=self.fps,
            jacobians=None if self.jacobians is None else self.jacobians[index],
            covariances=None if self.covariances is None else self.covariances[index],
            video=self.video,
            keypoint_names=self.keypoint_names,
            subject_names=self.subject_names,
            metadata=self.metadata,
            identities=None if self.identities is None else self.identities[index],
            times=None if self.times is None else self.times[index],
        )


def resolve_fps(fps: float | None, path: os.PathLike | str, stored: float | None = None) -> float:
    """The frame rate of tracks read from ``path``: ``fps`` when given, else the file's own
    (``stored``), else :data:`DEFAULT_FPS` with a logged warning."""
    if fps is not None:
        if not np.isfinite(fps) or fps <= 0:
            raise FommError(f"fps must be a positive number, got {fps}")
        return float(fps)
    if stored is not None and np.isfinite(stored) and stored > 0:
        return float(stored)
    log.warning("%s does not state a frame rate; assuming %.1f fps (pass fps= to set it)", path, DEFAULT_FPS)
    return DEFAULT_FPS
