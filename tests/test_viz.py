"""Pictures: keypoint dots, trails, rows of images and the overlay video."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fomm_kp.video import probe, read_frames
from fomm_kp.viz import TrailOverlay, draw_keypoints, draw_trails, image_row, keypoint_colors


def test_keypoint_colors_are_distinct_and_bright() -> None:
    colors = keypoint_colors(6)
    assert colors.shape == (6, 3) and colors.dtype == np.uint8
    assert len({tuple(c) for c in colors}) == 6 and colors.max(axis=1).min() == 255


def test_draw_keypoints_draws_outlined_dots_and_skips_missing_or_weak_points() -> None:
    frame = np.full((40, 40, 3), 128, dtype=np.uint8)
    points = np.array([[10.0, 10.0], [np.nan, 5.0], [30.0, 30.0]])
    drawn = draw_keypoints(frame, points, scores=np.array([1.0, 1.0, 0.1]), min_score=0.5, radius=3)
    assert np.array_equal(frame, np.full((40, 40, 3), 128, dtype=np.uint8))  # a copy is drawn on
    assert not np.array_equal(drawn[10, 10], frame[10, 10])  # the dot's colour at its centre
    assert np.array_equal(drawn[10, 13], [0, 0, 0])  # its dark outline, at the radius
    assert np.array_equal(drawn[30, 30], frame[30, 30])  # the weak point is not drawn


def test_draw_trails_fades_along_the_history() -> None:
    frame = np.zeros((20, 40, 3), dtype=np.uint8)
    history = np.array([[[2.0, 10.0]], [[20.0, 10.0]], [[37.0, 10.0]]])  # (L, K, 2): one keypoint moving right
    drawn = draw_trails(frame, history, np.array([[255, 255, 255]], dtype=np.uint8))
    assert drawn[10, 5].max() < drawn[10, 30].max()  # the older segment is fainter
    assert drawn[0].max() == 0  # nothing away from the path


def test_image_row_joins_with_white_gaps() -> None:
    a, b = np.zeros((5, 3, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)
    row = image_row([a, b], gap=2)
    assert row.shape == (5, 9, 3) and (row[:, 3:5] == 255).all()


def test_trail_overlay_enlarges_small_frames(tmp_path: Path) -> None:
    path = tmp_path / "overlay.mp4"
    overlay = TrailOverlay(path, fps=10.0, num_keypoints=2, trail=3)
    for t in range(4):
        overlay.add(np.full((48, 64, 3), 60, np.uint8), np.array([[10.0 + t, 20.0], [np.nan, np.nan]]))
    assert not path.exists()  # nothing appears before the overlay is closed
    overlay.close()
    info = probe(path)
    assert (info.width, info.height, info.num_frames) == (64 * 6, 48 * 6, 4)  # 384 // 64 = 6
    _, frames = read_frames(path)
    assert frames[-1].max() > 200  # the dots are drawn


def test_a_failed_overlay_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "overlay.mp4"
    overlay = TrailOverlay(path, fps=10.0, num_keypoints=1)
    overlay.add(np.zeros((32, 32, 3), np.uint8), np.array([[5.0, 5.0]]))
    overlay.close(success=False)
    assert not path.exists() and not list(tmp_path.iterdir())
