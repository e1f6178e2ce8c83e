"""Motion transfer: the keypoint math on synthetic keypoints, the rendering loop on a tiny untrained model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fomm_kp.animation.render import PanelOptions, TransferOptions, animate, load_source, output_size
from fomm_kp.animation.transfer import (
    Animator,
    animation_grid,
    best_frame_index,
    convex_hull_area,
    movement_scale,
    transfer_keypoints,
)
from fomm_kp.errors import FommError
from fomm_kp.models import KeypointOutput
from fomm_kp.models.dense_motion import sparse_motions
from fomm_kp.video import probe, read_frames

from conftest import moving_square_video, run_cli, save_model


def _keypoints(points: np.ndarray, jacobians: np.ndarray | None = None) -> KeypointOutput:
    """A KeypointOutput from ``(B, K, 2)`` points (identity jacobians unless given)."""
    kp = torch.as_tensor(points, dtype=torch.float32)
    b, k = kp.shape[:2]
    jac = torch.eye(2).expand(b, k, 2, 2).clone() if jacobians is None else torch.as_tensor(jacobians, dtype=torch.float32)
    return KeypointOutput(kp, jac, torch.zeros(b, k, 4, 4), torch.zeros(b, k, 2, 2), torch.ones(b, k))


def _random_jacobians(rng: np.random.Generator, b: int, k: int) -> np.ndarray:
    return np.eye(2) + 0.3 * rng.normal(size=(b, k, 2, 2))


# --- convex hull and movement scale ---------------------------------------------------------


def test_convex_hull_area_of_square_ignores_interior_points():
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2], [1, 1], [0.5, 1.5]], dtype=float)
    assert convex_hull_area(square) == pytest.approx(4.0)


def test_convex_hull_area_matches_scipy(rng):
    from scipy.spatial import ConvexHull

    for _ in range(5):
        points = rng.normal(size=(10, 2))
        assert convex_hull_area(points) == pytest.approx(ConvexHull(points).volume, rel=1e-9)


def test_convex_hull_area_degenerate_is_zero():
    assert convex_hull_area(np.array([[0, 0], [1, 1], [2, 2]], dtype=float)) == 0.0
    assert convex_hull_area(np.array([[0, 0], [1, 1]], dtype=float)) == 0.0


def test_movement_scale_is_ratio_of_hull_sides(rng):
    reference = rng.normal(size=(10, 2))
    assert movement_scale(2.5 * reference + 0.3, reference) == pytest.approx(2.5)
    assert movement_scale(reference, 2.0 * reference) == pytest.approx(0.5)


def test_movement_scale_degenerate_hull_is_one():
    line = np.array([[0, 0], [1, 0], [2, 0]], dtype=float)
    assert movement_scale(line, line) == 1.0


# --- relative / absolute transfer -----------------------------------------------------------


def test_zero_driving_motion_reproduces_source_keypoints(rng):
    source = _keypoints(rng.uniform(-0.8, 0.8, (1, 5, 2)), _random_jacobians(rng, 1, 5))
    reference = _keypoints(rng.uniform(-0.5, 0.5, (1, 5, 2)), _random_jacobians(rng, 1, 5))
    driving = _keypoints(reference.keypoints.repeat(3, 1, 1).numpy(), reference.jacobians.repeat(3, 1, 1, 1).numpy())
    out = transfer_keypoints(source, driving, reference, relative=True, adapt_scale=True)
    assert out.keypoints.shape == (3, 5, 2) and out.jacobians.shape == (3, 5, 2, 2)
    torch.testing.assert_close(out.keypoints, source.keypoints.expand(3, -1, -1))
    torch.testing.assert_close(out.jacobians, source.jacobians.expand(3, -1, -1, -1), atol=1e-5, rtol=1e-5)


def test_translation_of_driving_moves_source_keypoints_by_scaled_translation(rng):
    base = rng.uniform(-0.3, 0.3, (1, 6, 2))
    source = _keypoints(2.0 * base)  # twice as large as the driving subject
    reference = _keypoints(base)
    shift = np.array([0.1, -0.05])
    driving = _keypoints(base + shift)
    moved = transfer_keypoints(source, driving, reference, relative=True, adapt_scale=True)
    np.testing.assert_allclose(moved.keypoints.numpy(), 2.0 * base + 2.0 * shift, atol=1e-6)
    unscaled = transfer_keypoints(source, driving, reference, relative=True, adapt_scale=False)
    np.testing.assert_allclose(unscaled.keypoints.numpy(), 2.0 * base + shift, atol=1e-6)
    # A pure translation leaves the source jacobians unchanged.
    torch.testing.assert_close(moved.jacobians, source.jacobians)


def test_relative_jacobians_compose_driving_change_with_source(rng):
    source = _keypoints(rng.uniform(-0.5, 0.5, (1, 4, 2)), _random_jacobians(rng, 1, 4))
    reference = _keypoints(rng.uniform(-0.5, 0.5, (1, 4, 2)), _random_jacobians(rng, 1, 4))
    angle = 0.4
    rotation = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=torch.float32)
    driving = reference._replace(jacobians=rotation @ reference.jacobians)
    out = transfer_keypoints(source, driving, reference, relative=True)
    torch.testing.assert_close(out.jacobians, rotation @ source.jacobians, atol=1e-5, rtol=1e-5)


def test_absolute_transfer_uses_driving_keypoints(rng):
    source = _keypoints(rng.uniform(-0.5, 0.5, (1, 4, 2)))
    driving = _keypoints(rng.uniform(-0.5, 0.5, (2, 4, 2)), _random_jacobians(rng, 2, 4))
    out = transfer_keypoints(source, driving, None, relative=False)
    torch.testing.assert_close(out.keypoints, driving.keypoints)
    torch.testing.assert_close(out.jacobians, driving.jacobians)


def test_relative_transfer_needs_reference_and_matching_counts(rng):
    source = _keypoints(rng.uniform(-0.5, 0.5, (1, 4, 2)))
    with pytest.raises(FommError, match="reference"):
        transfer_keypoints(source, _keypoints(rng.uniform(size=(1, 4, 2))), None, relative=True)
    with pytest.raises(FommError, match="keypoints"):
        transfer_keypoints(source, _keypoints(rng.uniform(size=(1, 5, 2))), source, relative=True)


def test_translated_keypoints_give_translating_first_order_motions(rng):
    """Every keypoint slot's motion of the transferred keypoints samples the source shifted by the translation."""
    size, shift_px = 32, 3
    base = rng.uniform(-0.4, 0.4, (1, 5, 2))
    source = _keypoints(base, _random_jacobians(rng, 1, 5))
    reference = _keypoints(base, _random_jacobians(rng, 1, 5))
    shift = np.array([2 * shift_px / size, 0.0])  # 3 pixels to the right, in normalised units
    driving = reference._replace(keypoints=reference.keypoints + torch.tensor(shift, dtype=torch.float32))
    moved = transfer_keypoints(source, driving, reference, relative=True, adapt_scale=True)
    motions = sparse_motions(source, moved, size, size, None)  # (1, K+1, h, w, 2)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    for k in range(1, 6):
        warped = F.grid_sample(image, motions[:, k], mode="bilinear", padding_mode="border", align_corners=False)
        # output pixel x shows source pixel x - 3: the image moved right by 3 pixels
        torch.testing.assert_close(warped[..., shift_px:], image[..., :-shift_px], atol=1e-4, rtol=1e-4)


def test_best_frame_finds_the_frame_with_the_source_configuration(rng):
    source = rng.uniform(-0.5, 0.5, (8, 2))
    driving = rng.uniform(-0.5, 0.5, (6, 8, 2))
    driving[4] = 0.5 * source + np.array([0.2, -0.1])  # same shape, smaller and elsewhere
    assert best_frame_index(source, driving) == 4
    with pytest.raises(FommError):
        best_frame_index(source, driving[:, :5])


# --- rendering with a tiny untrained model --------------------------------------------------


def test_zero_motion_leaves_the_source_undeformed(tiny_model, rng):
    size = tiny_model.config.model.image_size
    source = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    animator = Animator(tiny_model.network, source)
    kp = animator.detect(np.stack([source, source]))
    animator.set_reference(kp)
    prediction, deformed, moved, _, _ = animator.render(kp)
    assert prediction.shape == (2, 3, size, size)
    torch.testing.assert_close(moved.keypoints, animator.kp_source.keypoints.expand(2, -1, -1))
    # All K+1 candidate motions are the identity, so the dense flow is too, whatever the masks.
    torch.testing.assert_close(deformed, animator.source_image.expand(2, -1, -1, -1), atol=1e-5, rtol=1e-5)


def test_animation_grid_shape(tiny_model, rng):
    size = tiny_model.config.model.image_size
    frames = rng.integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    grid = animation_grid(tiny_model.network, frames[0], frames[1:])
    assert grid.shape == (2 * size + 2, 4 * size + 3 * 2, 3) and grid.dtype == np.uint8
    with pytest.raises(FommError):
        animation_grid(tiny_model.network, frames[0], frames[1:, :8])


def test_animate_writes_even_sized_video_with_every_driving_frame(tiny_model, tmp_path):
    driving = tmp_path / "driving.mp4"
    moving_square_video(driving, 58, 46, 7)
    source = tmp_path / "source.png"
    import imageio.v3 as iio

    iio.imwrite(source, np.random.default_rng(1).integers(0, 256, (51, 37, 3), dtype=np.uint8))  # other size, odd
    out = tmp_path / "out.mp4"
    result = animate(source, driving, tiny_model, out, panels=PanelOptions(side_by_side=True, show_keypoints=True, size=33),
                     batch_size=3)
    info = probe(out)
    assert result.num_frames == 7 and info.num_frames == 7
    assert info.width % 2 == 0 and info.height % 2 == 0
    assert (info.width, info.height) == result.frame_size
    assert result.keypoints.shape == (7, tiny_model.num_keypoints, 2)
    _, frames = read_frames(out)
    assert frames.shape[1:3] == (info.height, info.width)


@pytest.mark.parametrize("shape, size, expected", [((40, 30), None, (30, 40)), ((51, 37), None, (38, 52)),
                                                   ((51, 37), 33, (26, 34)), ((20, 20), 64, (64, 64))])
def test_frames_are_written_at_the_source_size_made_even(tiny_model, tmp_path, shape, size, expected):
    import imageio.v3 as iio

    driving = tmp_path / "driving.mp4"
    moving_square_video(driving, 40, 40, 3)
    source = tmp_path / "source.png"
    iio.imwrite(source, np.random.default_rng(2).integers(0, 256, (*shape, 3), dtype=np.uint8))
    out = tmp_path / "out.mp4"
    result = animate(source, driving, tiny_model, out, panels=PanelOptions(size=size))
    info = probe(out)
    assert result.frame_size == expected == (info.width, info.height)
    assert output_size((*shape, 3), size) == expected


def test_animate_best_frame_and_gif(tiny_model, tmp_path):
    driving = tmp_path / "driving.mp4"
    moving_square_video(driving, 40, 40, 6)
    out = tmp_path / "out.gif"
    result = animate(driving, driving, tiny_model, out, TransferOptions(best_frame=True), source_frame=3)
    assert out.is_file() and 0 <= result.reference_frame < 6
    assert result.frame_size == (40, 40)  # the source's size, not the model's (32)
    with pytest.raises(FommError, match="relative"):
        animate(driving, driving, tiny_model, tmp_path / "x.mp4", TransferOptions(relative=False, best_frame=True))


def test_unreadable_source_image_is_a_clear_error(tiny_model, tmp_path):
    driving = tmp_path / "driving.mp4"
    moving_square_video(driving, 32, 32, 3)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a png")
    with pytest.raises(FommError, match="cannot read image"):
        animate(broken, driving, tiny_model, tmp_path / "out.mp4")
    with pytest.raises(FommError, match="not found"):
        animate(tmp_path / "missing.png", driving, tiny_model, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_load_source_resizes_any_size(tiny_model, rng):
    size = tiny_model.config.model.image_size
    image = rng.integers(0, 256, (77, 23, 3), dtype=np.uint8)
    assert load_source(tiny_model, image).shape == (size, size, 3)
    with pytest.raises(FommError):
        load_source(tiny_model, image[..., :2])


# --- command line ---------------------------------------------------------------------------


def test_cli_animate(tiny_model, tmp_path, monkeypatch, capsys):
    checkpoint = save_model(tiny_model, tmp_path / "checkpoint.pt")
    driving = tmp_path / "driving.mp4"
    moving_square_video(driving, 48, 36, 5)
    out = tmp_path / "anim.mp4"
    code, _, err = run_cli(["animate", str(driving), str(driving), "-m", str(checkpoint), "-o", str(out),
                            "--source-frame", "2", "--side-by-side", "--keypoints", "--best-frame"], capsys, monkeypatch)
    assert code == 0, err
    assert probe(out).num_frames == 5
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\x00\x01garbage")
    code, _, err = run_cli(["animate", str(broken), str(driving), "-m", str(checkpoint), "-o", str(tmp_path / "b.mp4")],
                           capsys, monkeypatch)
    assert code == 2 and "error: cannot read image" in err
