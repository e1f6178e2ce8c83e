"""Time-series helpers of the behaviour features."""

from __future__ import annotations

import numpy as np

from fomm_kp.behaviour.timeseries import unwrap_runs, valid_runs


def test_unwrap_runs_unwraps_each_column_on_its_own_runs_of_finite_values() -> None:
    rng = np.random.default_rng(0)
    turning = np.cumsum(rng.normal(0.0, 0.8, (120, 6)), axis=0)  # steps well inside ±π
    angle = np.angle(np.exp(1j * turning))  # wrapped to (−π, π]
    angle[40:45, 2] = np.nan  # a gap: each run is unwrapped on its own
    angle[:10, 4] = np.nan
    angle[:, 5] = np.nan
    out = unwrap_runs(angle)
    for j in range(angle.shape[1]):
        expected = angle[:, j].copy()
        for a, b in valid_runs(np.isfinite(angle[:, j])):
            expected[a:b] = np.unwrap(angle[a:b, j])
        np.testing.assert_array_equal(out[:, j], expected)
    # Columns without gaps are the turning angle itself, up to one multiple of 2π.
    for j in (0, 1, 3):
        offset = out[:, j] - turning[:, j]
        np.testing.assert_allclose(offset, offset[0], atol=1e-9)
        assert abs(offset[0] / (2 * np.pi) - round(offset[0] / (2 * np.pi))) < 1e-9
    assert np.isnan(out[40:45, 2]).all() and np.isnan(out[:, 5]).all()
