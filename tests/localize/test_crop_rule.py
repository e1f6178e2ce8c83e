"""The crop rule: a short clip is localised against the training video's stored empty scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fomm_kp.config import DataConfig
from fomm_kp.crops import CropSettings
from fomm_kp.localize.crop_rule import model_crops, training_crops
from fomm_kp.video import VideoWriter

from conftest import synthetic_frames


def _write(path: Path, frames: np.ndarray) -> Path:
    with VideoWriter(path, fps=25) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def test_a_short_clip_is_localised_against_the_training_scene(tmp_path: Path) -> None:
    frames, centres, _, _ = synthetic_frames(60)
    long_clip = _write(tmp_path / "long.mp4", frames)
    data = DataConfig(localize="on")
    located, settings, background, distinct = training_crops(long_clip, data)
    assert settings.localized and settings.scene is not None and background is not None and distinct
    settings = CropSettings(localized=True, box_side=float(np.median(located.boxes[:, 2] - located.boxes[:, 0])),
                            aligned=settings.aligned, scene=settings.scene)
    # The checkpoint metadata round trip keeps the scene, pixel for pixel.
    restored = CropSettings.from_meta(settings.to_meta())
    np.testing.assert_array_equal(restored.scene.image, settings.scene.image)
    # A 5-frame clip in which the subject hardly moves: its own median still holds the subject.
    short = np.repeat(frames[10:11], 5, axis=0)
    short_clip = _write(tmp_path / "short.mp4", short)
    with_scene = model_crops(short_clip, restored, data)
    assert with_scene.found.all()
    box = with_scene.boxes[0]
    assert box[0] < centres[10, 0] < box[2] and box[1] < centres[10, 1] < box[3]
    without = model_crops(short_clip, CropSettings(localized=True, box_side=restored.box_side,
                                                   aligned=restored.aligned), data)
    assert not without.found.any()  # today's behaviour without the stored scene: not found


def test_motion_crop_boxes_the_part_of_the_frame_that_changes(tmp_path: Path) -> None:
    """A static textured 160x120 frame where only a small region changes (a flickering, moving
    patch at the upper left): with motion_crop auto the crop is a fixed box around that region."""
    rng = np.random.default_rng(3)
    scene = (rng.random((120, 160, 3)) * 120 + 60).astype(np.uint8)
    frames = []
    for t in range(60):
        frame = scene.copy()
        x, y = 20 + int(8 * np.sin(t / 3.0)), 15 + int(6 * np.cos(t / 4.0))
        frame[y : y + 12, x : x + 12] = 250 if t % 2 else 5
        frames.append(frame)
    clip = _write(tmp_path / "paw.mp4", np.stack(frames))
    located, settings, _, _ = training_crops(clip, DataConfig(localize="off", motion_crop="auto"))
    assert settings.fixed_crop is not None and not settings.localized
    x0, y0, x1, y1 = settings.fixed_crop
    assert x0 <= 12 and y0 <= 9 and x1 >= 40 and y1 >= 33  # the whole range of the patch ...
    assert (x1 - x0) * (y1 - y0) <= 0.5 * 160 * 120  # ... and much less than the frame
    assert np.allclose(located.boxes, settings.fixed_crop)
    none, off, _, _ = training_crops(clip, DataConfig(localize="off", motion_crop="off"))
    assert none is None and off.fixed_crop is None
