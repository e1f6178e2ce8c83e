"""The block-mean reduction localisation works on (fomm_kp.localize.background)."""

from __future__ import annotations

import numpy as np
import pytest

from fomm_kp.localize.background import reduce_frame


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 5])
def test_a_grey_frame_reduces_as_its_rgb_frame(factor: int, rng: np.random.Generator) -> None:
    grey = rng.integers(0, 256, (47, 61)).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    reduced = reduce_frame(grey, factor)
    assert reduced.dtype == np.float32 and reduced.shape == (47 // factor, 61 // factor, 3)
    np.testing.assert_array_equal(reduced, reduce_frame(rgb, factor))
