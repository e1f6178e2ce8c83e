"""The subject in one frame (fomm_kp.localize.blobs): the faster pieces give what the plain ones give."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_opening, distance_transform_edt
from skimage.measure import label as skimage_label
from skimage.morphology import disk

from conftest import synthetic_frames
from fomm_kp.config import LocalizeConfig
from fomm_kp.localize.background import background_from_frames, reduce_frame
from fomm_kp.localize.blobs import (_components, _label8, _opening_by_distances, choose_subject, exact_median,
                                    find_in_reduced, foreground_parts)


@pytest.mark.parametrize("seed", range(4))
def test_exact_median_is_numpys_median(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for trial in range(300):
        n = int(rng.integers(1, 25000))
        values = [rng.random(n).astype(np.float32), (rng.integers(0, 9, n) / 32).astype(np.float32),
                  rng.exponential(1.0, n), np.abs(rng.integers(0, 3, n) / 32.0 - 1 / 64)][trial % 4]
        if trial % 37 == 0:
            values[rng.integers(0, n)] = np.nan
        expected, found = float(np.median(values)), exact_median(values)
        assert found == expected or (np.isnan(expected) and np.isnan(found)), (n, trial)


@pytest.mark.parametrize("radius", [3, 4, 6])
def test_opening_by_distances_is_scipys_opening(radius: int, rng: np.random.Generator) -> None:
    kept = 0
    for _ in range(40):
        height, width = int(rng.integers(10, 50)), int(rng.integers(10, 50))
        ys, xs = np.indices((height, width))
        mask = rng.random((height, width)) < 0.1  # specks, and discs of several sizes (a body, legs)
        for _ in range(int(rng.integers(1, 5))):
            x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(2, 14)
            mask |= (xs - x) ** 2 + (ys - y) ** 2 <= r * r
        mask[[0, -1]] = False
        mask[:, [0, -1]] = False
        expected = binary_opening(mask, structure=disk(radius))
        np.testing.assert_array_equal(_opening_by_distances(distance_transform_edt(mask), radius), expected)
        kept += int(expected.any())
    assert kept >= 10  # most masks keep a core


def test_labels_and_part_sums_are_the_whole_image_ones(rng: np.random.Generator) -> None:
    for _ in range(20):
        mask = rng.random((30, 40)) < 0.3
        diff = rng.random((30, 40)).astype(np.float32) * 50
        labels, area, mass, cx, cy = _components(mask, diff)
        np.testing.assert_array_equal(labels, skimage_label(mask, connectivity=2))
        np.testing.assert_array_equal(_label8(mask), labels)
        flat = labels.ravel()
        ys, xs = np.indices(mask.shape)
        n = labels.max() + 1
        whole_area = np.bincount(flat, minlength=n).astype(np.float64)
        np.testing.assert_array_equal(area[1:], whole_area[1:])
        np.testing.assert_array_equal(mass[1:], np.bincount(flat, weights=diff.ravel(), minlength=n)[1:])
        np.testing.assert_array_equal(cx[1:], np.bincount(flat, weights=xs.ravel().astype(float), minlength=n)[1:] / whole_area[1:])
        np.testing.assert_array_equal(cy[1:], np.bincount(flat, weights=ys.ravel().astype(float), minlength=n)[1:] / whole_area[1:])
        assert area[0] == mass[0] == cx[0] == cy[0] == 0


def test_choosing_among_the_parts_is_finding_in_the_frame() -> None:
    frames = synthetic_frames(30, missing=(7,))[0]
    config = LocalizeConfig()
    background = background_from_frames(frames[::3], config)
    previous = None
    for frame in frames:
        reduced = reduce_frame(frame, background.factor)
        blob = find_in_reduced(reduced, background, config, previous, 48.0)
        chosen = choose_subject(foreground_parts(reduced, background, config), background, config, previous, 48.0)
        assert (blob is None) == (chosen is None)
        if blob is not None:
            np.testing.assert_array_equal(blob.centre, chosen.centre)
            assert blob.heading == chosen.heading
            previous = blob.centre
