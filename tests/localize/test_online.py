"""Following the subject without the future: running background, causal boxes and headings."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import arena_background, synthetic_frames
from fomm_kp.config import DataConfig
from fomm_kp.crops import CropSettings
from fomm_kp.errors import FommError
from fomm_kp.localize.background import Background, background_from_frames
from fomm_kp.localize.crop_rule import online_boxes
from fomm_kp.localize.online import OnlineConfig, OnlineLocalizer, RunningBackground


def _inside(box: np.ndarray, point: np.ndarray) -> bool:
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


def test_running_background_samples_every_n_frames_and_waits_for_warmup() -> None:
    running = RunningBackground(8, 8, 1, every=3, size=4, warmup=2)
    frames = [np.full((8, 8, 3), float(v), np.float32) for v in range(12)]
    for index, frame in enumerate(frames):
        running.offer(index, frame)
        if index == 0:
            assert running.current is None  # one sample < warmup
    assert len(running.samples) == 4  # frames 0, 3, 6 and 9 joined
    assert [float(s[0, 0, 0]) for s in running.samples] == [0.0, 3.0, 6.0, 9.0]
    np.testing.assert_allclose(running.current.image, 4.5)


def test_online_localizer_follows_the_subject_after_warmup() -> None:
    frames, centres, _, angles = synthetic_frames(60)
    online = OnlineConfig(sample_seconds=0.5, samples=20, warmup=4, smoothing=1.0)
    localizer = OnlineLocalizer(320, 240, 48, aligned=True, fps=10.0, online=online)
    boxes = [localizer.update(i, f) for i, f in enumerate(frames)]
    assert all(b is None for b in boxes[:15])  # samples at frames 0, 5, 10, 15: warm from frame 15
    found = [i for i, b in enumerate(boxes) if b is not None]
    assert len(found) >= 40
    for i in found:
        assert boxes[i].shape == (5,)
        assert boxes[i][2] - boxes[i][0] == 48
        assert _inside(boxes[i], centres[i])
    errors = [abs(np.angle(np.exp(1j * (boxes[i][4] - angles[i])))) for i in found]
    assert np.median(errors) < 0.3


def test_online_localizer_with_a_fixed_background_needs_no_warmup() -> None:
    frames, centres, _, _ = synthetic_frames(10)
    empty = np.clip(arena_background(np.random.default_rng(0)), 0, 255).astype(np.uint8)
    background = background_from_frames([empty])
    localizer = OnlineLocalizer(320, 240, 48, aligned=False, fps=10.0, background=background)
    boxes = [localizer.update(i, f) for i, f in enumerate(frames)]
    assert all(b is not None and b.shape == (4,) and _inside(b, c) for b, c in zip(boxes, centres))


def test_online_localizer_reports_frames_without_a_subject() -> None:
    frames, _, _, _ = synthetic_frames(12, missing=(9, 10))
    empty = np.clip(arena_background(np.random.default_rng(0)), 0, 255).astype(np.uint8)
    localizer = OnlineLocalizer(320, 240, 48, aligned=False, fps=10.0, background=background_from_frames([empty]))
    boxes = [localizer.update(i, f) for i, f in enumerate(frames)]
    assert boxes[9] is None and boxes[10] is None
    assert boxes[8] is not None and boxes[11] is not None


def test_online_localizer_refuses_frames_of_another_size() -> None:
    localizer = OnlineLocalizer(320, 240, 48, aligned=False, fps=10.0)
    with pytest.raises(FommError, match="320x240"):
        localizer.update(0, np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(FommError, match="background"):
        OnlineLocalizer(320, 240, 48, False, 10.0, background=Background(np.zeros((6, 8, 3), np.float32), 40, 320, 200))


def test_online_boxes_follow_the_model_crop_settings() -> None:
    data = DataConfig()
    frame = np.zeros((240, 320, 3), np.uint8)
    whole = online_boxes(CropSettings(), data, 320, 240, 10.0)
    np.testing.assert_array_equal(whole(0, frame), [0, 0, 320, 240])
    fixed = online_boxes(CropSettings(fixed_crop=(10, 20, 110, 120)), data, 320, 240, 10.0)
    np.testing.assert_array_equal(fixed(5, frame), [10, 20, 110, 120])
    localised = online_boxes(CropSettings(localized=True, box_side=48.0), data, 320, 240, 10.0)
    assert localised(0, frame) is None  # warming up


def test_online_config_is_checked() -> None:
    with pytest.raises(FommError, match="smoothing"):
        OnlineConfig(smoothing=0.0)
    with pytest.raises(FommError, match="warmup"):
        OnlineConfig(samples=3, warmup=5)


def test_the_models_stored_scene_stands_in_until_the_running_background_is_warm() -> None:
    from fomm_kp.crops import Scene

    frames, centres, _, _ = synthetic_frames(30)
    empty = np.clip(arena_background(np.random.default_rng(0)), 0, 255).astype(np.uint8)
    scene_image = background_from_frames([empty]).image.round().astype(np.uint8)
    crop = CropSettings(localized=True, box_side=48.0, scene=Scene(scene_image, 2, 320, 240))
    boxes_for = online_boxes(crop, DataConfig(), 320, 240, 10.0)
    boxes = [boxes_for(i, f) for i, f in enumerate(frames)]
    assert all(b is not None and _inside(b, c) for b, c in zip(boxes, centres))  # from the first frame on
    other_size = online_boxes(crop, DataConfig(), 640, 480, 10.0)
    assert other_size(0, np.zeros((480, 640, 3), np.uint8)) is None  # a scene of another size is not used
