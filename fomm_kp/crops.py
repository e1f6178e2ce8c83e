"""Where a model looks, and maps between its crops and the frame.

:class:`CropSettings` is the typed record of a trained model's crops (a fixed box, boxes that follow
a localised subject, or whole frames; turned to the subject's heading or not). It is saved in every
checkpoint (and exported ONNX file) as plain metadata and read once when a model is loaded; tracking,
distillation, animation and evaluation all crop through it (:mod:`fomm_kp.localize.crop_rule`).

Boxes are ``(x0, y0, x1, y1)`` in frame pixels, or ``(B, 5)`` with the angle a crop was turned by
(:func:`fomm_kp.video.crop_frame`). :func:`box_maps` is the one crop → frame map: keypoints,
jacobians and covariances found in a crop all go back to the frame through it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from fomm_kp.errors import FommError

__all__ = ["Scene", "CropSettings", "check_box", "check_box_in_frame", "box_maps", "crop_to_frame", "frame_to_crop", "mask_not_found"]


@dataclass(frozen=True, eq=False)
class Scene:
    """The empty scene a localised model learnt against, at work resolution: ``image`` uint8
    ``(h, w, 3)``, reduced by ``factor`` from ``frame_width`` × ``frame_height`` frames. Kept so that a
    clip too short for a background of its own (a few frames of a behaviour) can be localised
    against the training video's."""

    image: np.ndarray
    factor: int
    frame_width: int
    frame_height: int

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
            raise FommError(f"a scene must be a uint8 (h, w, 3) image, got {image.dtype} {image.shape}")
        if self.factor < 1 or self.frame_width < 1 or self.frame_height < 1:
            raise FommError("a scene needs a positive reduction factor and frame size")
        object.__setattr__(self, "image", image)

    def to_meta(self) -> dict[str, Any]:
        """Plain data (the pixels as base64 text: checkpoints and ONNX metadata hold it as is)."""
        return {"shape": list(self.image.shape), "factor": int(self.factor),
                "frame_size": [int(self.frame_width), int(self.frame_height)],
                "pixels": base64.b64encode(np.ascontiguousarray(self.image).tobytes()).decode("ascii")}

    @classmethod
    def from_meta(cls, data: Mapping[str, Any]) -> "Scene":
        """Read it back: raw uint8 bytes of the stated shape, nothing else is decoded."""
        try:
            shape = tuple(int(v) for v in data["shape"])
            raw = base64.b64decode(str(data["pixels"]), validate=True)
            image = np.frombuffer(raw, dtype=np.uint8).reshape(shape)
            width, height = (int(v) for v in data["frame_size"])
            return cls(image.copy(), int(data["factor"]), width, height)
        except (KeyError, TypeError, ValueError) as exc:
            raise FommError(f"the model's stored scene is unreadable ({exc})") from None


@dataclass(frozen=True)
class CropSettings:
    """Where a trained model looks in each frame.

    Attributes:
        localized: crops follow the subject (:mod:`fomm_kp.localize`), with square boxes of side
            ``box_side``.
        fixed_crop: one box ``(x0, y0, x1, y1)`` for every frame, or None.
        box_side: median side of the training crops in pixels (the localised box side).
        aligned: crops are turned to the subject's heading (a fifth box value).
        scene: the empty scene of the training video (localised models), or None.
        subjects: how many subjects each frame holds (each localised and cropped on its own; 0:
            count them in each video, see ``DataConfig.subjects``).
    Neither localised nor a fixed crop: the model sees whole frames.
    """

    localized: bool = False
    fixed_crop: tuple[float, float, float, float] | None = None
    box_side: float = 0.0
    aligned: bool = False
    scene: Scene | None = field(default=None, compare=False)
    subjects: int = 1

    def __post_init__(self) -> None:
        if self.fixed_crop is not None:
            object.__setattr__(self, "fixed_crop", check_box(self.fixed_crop))
        if isinstance(self.subjects, bool) or not isinstance(self.subjects, (int, np.integer)) or self.subjects < 0:
            raise FommError(f"subjects must be a whole number >= 0 (0: count them), got {self.subjects!r}")
        if self.subjects != 1 and not self.localized:
            raise FommError("several subjects need localised crops (each subject is found and cropped on its own)")

    @property
    def whole_frames(self) -> bool:
        return not self.localized and self.fixed_crop is None

    def to_meta(self) -> dict[str, Any]:
        """The checkpoint metadata keys that hold these settings (plain data; ``subjects`` only when not 1,
        so that single-subject metadata is as it always was)."""
        meta = {
            "localized": bool(self.localized),
            "fixed_crop": [float(v) for v in self.fixed_crop] if self.fixed_crop is not None else [],
            "box_side": float(self.box_side),
            "aligned": bool(self.aligned),
            **({"scene": self.scene.to_meta()} if self.scene is not None else {}),
        }
        return meta if self.subjects == 1 else {**meta, "subjects": int(self.subjects)}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "CropSettings":
        """Read the settings from checkpoint or ONNX metadata (any fomm_kp version; absent keys: whole frames).
        Values of the wrong kind are a :class:`FommError`."""
        if not isinstance(meta, Mapping):
            raise FommError(f"crop settings must be a mapping, got {type(meta).__name__}")
        crop = meta.get("fixed_crop") or None
        flags = [meta.get(key, False) for key in ("localized", "aligned")]
        side = meta.get("box_side", 0.0)
        if not all(isinstance(v, bool) for v in flags) or isinstance(side, bool) or not isinstance(side, (int, float)) \
                or not np.isfinite(side) or side < 0 or not (crop is None or isinstance(crop, (list, tuple))):
            raise FommError(f"bad crop settings (localized {flags[0]!r}, aligned {flags[1]!r}, box_side {side!r}, "
                            f"fixed_crop {crop!r})")
        scene = Scene.from_meta(meta["scene"]) if meta.get("scene") else None
        return cls(localized=flags[0], fixed_crop=None if crop is None else tuple(crop), box_side=float(side),
                   aligned=flags[1], scene=scene, subjects=meta.get("subjects", 1))


def check_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    """A crop box ``x0, y0, x1, y1`` with ``x1 > x0`` and ``y1 > y0``, all finite; one error line otherwise."""
    values = np.asarray(box, dtype=np.float64)
    if values.shape != (4,) or not np.isfinite(values).all() or values[2] <= values[0] or values[3] <= values[1]:
        raise FommError(f"crop must be x0,y0,x1,y1 with x1 > x0 and y1 > y0, got {list(box)}")
    return tuple(float(v) for v in values)


def check_box_in_frame(box: Sequence[float], width: int, height: int, video: object = "") -> tuple[float, float, float, float]:
    """:func:`check_box`, and the box must overlap the ``width`` × ``height`` frame (parts outside are
    filled with edge pixels; a box wholly outside would show nothing but those)."""
    x0, y0, x1, y1 = check_box(box)
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        of = f" of {video}" if video else ""
        raise FommError(f"crop {x0:g},{y0:g},{x1:g},{y1:g} lies wholly outside the {width}x{height} frame{of}")
    return x0, y0, x1, y1


def box_maps(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where crops cut with ``boxes`` ``(B, 4)`` (or ``(B, 5)``, turned by the fifth value: see
    :func:`fomm_kp.video.crop_frame`) sit in the frame: the centre ``(B, 2)`` in frame pixels and the
    linear map ``(B, 2, 2)`` = R(angle) · diag(width / 2, height / 2) from normalised crop
    coordinates (−1 … 1 across the crop) to frame-pixel offsets from that centre."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] not in (4, 5):
        raise FommError(f"boxes must have shape (B, 4) or (B, 5), got {boxes.shape}")
    half = (boxes[:, 2:4] - boxes[:, 0:2]) / 2.0
    centre = (boxes[:, 0:2] + boxes[:, 2:4]) / 2.0 - 0.5  # pixel-centre convention
    angle = boxes[:, 4] if boxes.shape[1] == 5 else np.zeros(len(boxes))
    cos, sin = np.cos(angle), np.sin(angle)
    linear = np.stack([np.stack([cos * half[:, 0], -sin * half[:, 1]], axis=-1),
                       np.stack([sin * half[:, 0], cos * half[:, 1]], axis=-1)], axis=-2)
    return centre, linear


def _crop_geometry(points: np.ndarray, boxes: np.ndarray, crop_size: int | None):
    """Checked points ``(B, ..., 2)``, and per point the box centre, linear map (:func:`box_maps`)
    and crop side in crop pixels, broadcast to the points' shape."""
    points = np.asarray(points, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    if points.shape[-1] != 2 or boxes.ndim != 2 or boxes.shape[-1] not in (4, 5) or points.shape[0] != boxes.shape[0]:
        raise FommError(f"points (B, ..., 2) and boxes (B, 4 or 5) disagree: {points.shape} vs {boxes.shape}")
    centre, linear = box_maps(boxes)
    extra = (1,) * (points.ndim - 2)
    size = boxes[:, 2:4] - boxes[:, 0:2] if crop_size is None else np.full((len(boxes), 2), float(crop_size))
    shape = (len(boxes),) + extra
    return points, centre.reshape(shape + (2,)), linear.reshape(shape + (2, 2)), size.reshape(shape + (2,))


def crop_to_frame(points: np.ndarray, boxes: np.ndarray, crop_size: int | None = None) -> np.ndarray:
    """Map points from crop pixels to frame pixels.

    Args:
        points: ``(B, ..., 2)`` x, y in pixels of the crop, resized to ``crop_size`` × ``crop_size``
            (``None``: not resized), pixel-centre convention.
        boxes: ``(B, 4)`` the crop boxes ``x0, y0, x1, y1``, or ``(B, 5)`` with the angle each crop
            was turned by (radians; see :func:`fomm_kp.video.crop_frame`).
    Returns float32 ``(B, ..., 2)`` in frame pixels; NaN stays NaN.
    """
    points, centre, linear, size = _crop_geometry(points, boxes, crop_size)
    normalised = (points + 0.5) * 2.0 / size - 1.0
    return (centre + np.einsum("...ij,...j->...i", linear, normalised)).astype(np.float32)


def frame_to_crop(points: np.ndarray, boxes: np.ndarray, crop_size: int | None = None) -> np.ndarray:
    """Inverse of :func:`crop_to_frame`: frame pixels → pixels of the (resized) crop."""
    points, centre, linear, size = _crop_geometry(points, boxes, crop_size)
    normalised = np.einsum("...ij,...j->...i", np.linalg.inv(linear), points - centre)
    return ((normalised + 1.0) * size / 2.0 - 0.5).astype(np.float32)


def mask_not_found(keypoints: np.ndarray, scores: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(T, ..., K, 2)`` → NaN and scores ``(T, ..., K)`` → 0 in frames where the subject
    was not found (``found`` bool ``(T,)``). Returns new arrays."""
    keypoints = np.array(keypoints, dtype=np.float32, copy=True)
    scores = np.array(scores, dtype=np.float32, copy=True)
    found = np.asarray(found, dtype=bool)
    if found.shape != (keypoints.shape[0],) or scores.shape[0] != keypoints.shape[0]:
        raise FommError(f"mask_not_found: found {found.shape} vs keypoints {keypoints.shape}, scores {scores.shape}")
    keypoints[~found] = np.nan
    scores[~found] = 0.0
    return keypoints, scores
