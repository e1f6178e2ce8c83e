"""Pictures people look at: keypoints drawn on frames, trails, rows of images, overlay videos."""

from __future__ import annotations

import colorsys
import os

import numpy as np
from skimage.draw import disk, line_aa

from fomm_kp.video import VideoWriter

__all__ = ["keypoint_colors", "draw_keypoints", "draw_trails", "draw_labels", "image_row", "TrailOverlay"]


def keypoint_colors(count: int) -> np.ndarray:
    """``(count, 3)`` uint8 colours spread over the hue circle, bright and saturated."""
    return np.array(
        [[int(255 * c) for c in colorsys.hsv_to_rgb(i / max(count, 1), 0.9, 1.0)] for i in range(count)], dtype=np.uint8
    )


def _disk(frame: np.ndarray, x: float, y: float, radius: float, color: np.ndarray) -> None:
    rr, cc = disk((y, x), radius, shape=frame.shape[:2])
    frame[rr, cc] = color


def draw_keypoints(
    frame: np.ndarray, points: np.ndarray, colors: np.ndarray | None = None, radius: float | None = None,
    scores: np.ndarray | None = None, min_score: float = 0.0,
) -> np.ndarray:
    """A copy of uint8 ``frame`` (H, W, 3) with ``points`` (K, 2) in pixels drawn as outlined dots.

    NaN points and points scoring below ``min_score`` are skipped.
    """
    out = frame.copy()
    colors = keypoint_colors(len(points)) if colors is None else colors
    radius = radius or max(2.0, min(frame.shape[:2]) / 64)
    for k, (x, y) in enumerate(points):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        if scores is not None and scores[k] < min_score:
            continue
        _disk(out, x, y, radius + 1, np.array([0, 0, 0], dtype=np.uint8))
        _disk(out, x, y, radius, colors[k])
    return out


def draw_trails(frame: np.ndarray, history: np.ndarray, colors: np.ndarray | None = None) -> np.ndarray:
    """Draw fading polylines of ``history`` (L, K, 2) pixel positions, oldest first, onto a copy of ``frame``."""
    out = frame.astype(np.float32)
    length, k = history.shape[:2]
    colors = keypoint_colors(k) if colors is None else colors
    h, w = frame.shape[:2]
    for i in range(1, length):
        alpha = i / length
        for j in range(k):
            (x0, y0), (x1, y1) = history[i - 1, j], history[i, j]
            if not np.all(np.isfinite([x0, y0, x1, y1])):
                continue
            rr, cc, val = line_aa(int(round(y0)), int(round(x0)), int(round(y1)), int(round(x1)))
            keep = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            rr, cc, val = rr[keep], cc[keep], (val[keep] * alpha)[:, None]
            out[rr, cc] = out[rr, cc] * (1 - val) + colors[j].astype(np.float32) * val
    return out.clip(0, 255).astype(np.uint8)


def image_row(images: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """Concatenate same-height uint8 images left to right with white gaps."""
    height = images[0].shape[0]
    spacer = np.full((height, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, image in enumerate(images):
        if i:
            parts.append(spacer)
        parts.append(image)
    return np.concatenate(parts, axis=1)


def draw_labels(frame: np.ndarray, places: np.ndarray, labels: list[str], colors: np.ndarray) -> np.ndarray:
    """A copy of uint8 ``frame`` with ``labels[i]`` written in ``colors[i]`` at ``places[i]`` ``(x, y)``
    (NaN places are skipped), on a dark backing so that they read on any background."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    for (x, y), text, color in zip(places, labels, colors):
        if np.isfinite(x) and np.isfinite(y):
            left, top, right, bottom = draw.textbbox((x, y), text)
            draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(0, 0, 0))
            draw.text((x, y), text, fill=tuple(int(c) for c in color))
    return np.asarray(image)


class TrailOverlay:
    """A video of frames with their keypoints and short fading trails (``fomm-kp track --overlay``).

    Small frames are enlarged by an integer factor (to about 384 px) so that dots and trails stay
    legible. With several ``subjects`` each subject has one colour and its name and identity
    confidence written beside it. Written through :class:`~fomm_kp.video.VideoWriter`: nothing
    appears at ``path`` unless :meth:`close` is called with ``success``.
    """

    def __init__(self, path: str | os.PathLike, fps: float, num_keypoints: int, trail: int = 12, subjects: int = 1) -> None:
        self.writer = VideoWriter(path, fps)
        self.subjects = int(subjects)
        if self.subjects > 1:
            self.subject_colors = keypoint_colors(self.subjects)
            self.colors = np.repeat(self.subject_colors, num_keypoints, axis=0)
        else:
            self.colors = keypoint_colors(num_keypoints)
        self.trail = max(1, int(trail))
        self.history: list[np.ndarray] = []

    def add(self, frame: np.ndarray, points: np.ndarray, identity: np.ndarray | None = None) -> None:
        """Write uint8 ``frame`` ``(H, W, 3)`` with ``points`` ``(K, 2)`` (or ``(N, K, 2)`` for several
        subjects, with their identity confidences ``(N,)``) in its pixels (NaN: not drawn)."""
        zoom = max(1, 384 // max(frame.shape[:2]))
        points = (np.asarray(points, dtype=np.float64) + 0.5) * zoom - 0.5
        flat = points.reshape(-1, 2)
        self.history.append(flat)
        del self.history[:-self.trail]
        if zoom > 1:
            frame = np.repeat(np.repeat(frame, zoom, axis=0), zoom, axis=1)
        drawn = draw_keypoints(draw_trails(frame, np.stack(self.history), self.colors), flat, self.colors)
        if self.subjects > 1:
            finite = np.isfinite(points).all(axis=-1)  # (N, K)
            places = np.array([points[n, finite[n]].max(axis=0) + 4.0 if finite[n].any() else (np.nan, np.nan)
                               for n in range(len(points))])
            confidence = np.zeros(self.subjects) if identity is None else identity
            labels = [f"{n} ({c:.2f})" for n, c in zip(range(self.subjects), confidence)]
            drawn = draw_labels(drawn, places, labels, self.subject_colors)
        self.writer.write(drawn)

    def close(self, success: bool = True) -> None:
        self.writer.close(success=success)
