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
    located, settings, background = training_crops(long_clip, data)
    assert settings.localized and settings.scene is not None and background is not None
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
