"""The detector surface: detections mapped from crops back to frame pixels."""

from __future__ import annotations

import numpy as np
import torch

from fomm_kp.crops import crop_to_frame
from fomm_kp.runtime.detector import detections_in_frame


def test_turned_crop_detections_map_back_like_crop_to_frame() -> None:
    """Keypoints, local affines and covariances found in a turned crop come back in frame pixels."""
    rng = np.random.default_rng(0)
    normalised = rng.uniform(-1, 1, (2, 3, 2))
    boxes = np.array([[10.0, 20.0, 74.0, 84.0, 0.6], [-5.0, 3.0, 35.0, 43.0, -2.2]])
    rotation = np.array([[0.0, -1.0], [1.0, 0.0]])  # a quarter turn, in crop coordinates
    jacobians = np.tile(rotation, (2, 3, 1, 1))
    covariances = np.tile(np.diag([0.02, 0.01]), (2, 3, 1, 1))
    det = detections_in_frame(*(torch.from_numpy(a).float() for a in (normalised, np.ones((2, 3)), jacobians, covariances)), boxes)
    size = 32  # any detector size: normalised → its pixels → frame
    expected = crop_to_frame((normalised + 1) * size / 2 - 0.5, boxes, size)
    np.testing.assert_allclose(det.keypoints, expected, atol=1e-3)
    # a square box keeps a rotation a rotation, and a turned crop turns the covariance's axes
    np.testing.assert_allclose(det.jacobians, np.tile(rotation, (2, 3, 1, 1)), atol=1e-5)
    for b in range(2):
        half = (boxes[b, 2] - boxes[b, 0]) / 2
        c, s = np.cos(boxes[b, 4]), np.sin(boxes[b, 4])
        turn = np.array([[c, -s], [s, c]])
        np.testing.assert_allclose(det.covariances[b, 0], half**2 * turn @ np.diag([0.02, 0.01]) @ turn.T, rtol=1e-4)
