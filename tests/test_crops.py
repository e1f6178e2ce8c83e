"""Crop settings and the maps between crops and the frame."""

from __future__ import annotations

import numpy as np
import pytest

from fomm_kp.crops import CropSettings, crop_to_frame, frame_to_crop
from fomm_kp.errors import FommError


def test_turned_crop_mapping_without_resize():
    # a quarter turn: the crop's x axis runs down the frame
    boxes = np.array([[10, 20, 30, 40, np.pi / 2]])
    centre = np.array([19.5, 29.5])
    points = np.array([[[9.5 + 3.0, 9.5], [9.5, 9.5 + 2.0]]])  # 3 px along crop x, 2 px along crop y
    mapped = crop_to_frame(points, boxes)
    np.testing.assert_allclose(mapped[0], [centre + [0, 3.0], centre + [-2.0, 0]], atol=1e-5)
    np.testing.assert_allclose(frame_to_crop(mapped, boxes), points, atol=1e-5)


def test_crop_mapping_without_resize():
    boxes = np.array([[10, 20, 74, 84]], dtype=np.float32)
    points = np.array([[[0.0, 0.0], [63.0, 5.5], [np.nan, 1.0]]])
    mapped = crop_to_frame(points, boxes)
    np.testing.assert_allclose(mapped[0, :2], [[10, 20], [73, 25.5]])
    assert np.isnan(mapped[0, 2, 0])
    with pytest.raises(FommError):
        crop_to_frame(points, np.zeros((2, 4)))


def test_crop_settings_round_trip_through_checkpoint_metadata() -> None:
    settings = CropSettings(localized=True, box_side=48.0, aligned=True)
    assert CropSettings.from_meta(settings.to_meta()) == settings
    fixed = CropSettings(fixed_crop=(1, 2, 30, 40))
    assert fixed.fixed_crop == (1.0, 2.0, 30.0, 40.0) and not fixed.whole_frames
    assert CropSettings.from_meta(fixed.to_meta()) == fixed
    # a checkpoint of an older fomm_kp: the same flat metadata keys, some absent
    assert CropSettings.from_meta({"localized": False, "fixed_crop": []}) == CropSettings()
    assert CropSettings.from_meta({}).whole_frames


@pytest.mark.parametrize("box", [(0, 0, 0, 10), (5, 5, 1, 10), (0, 0, float("nan"), 10), (0, 0, 10)])
def test_bad_fixed_crop_is_one_clear_error(box) -> None:
    with pytest.raises(FommError, match="crop must be x0,y0,x1,y1"):
        CropSettings(fixed_crop=box)
