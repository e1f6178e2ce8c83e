"""Shapes and finiteness of the FOMM networks across configs; properties of their outputs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fomm_kp.config import ModelConfig, builtin_config
from fomm_kp.geometry import coordinate_grid
from fomm_kp.models import FOMM, KeypointDetector, KeypointOutput
from fomm_kp.models.blocks import Hourglass
from fomm_kp.models.dense_motion import DenseMotionNetwork, sparse_motions
from fomm_kp.models.generator import Generator


def tiny() -> ModelConfig:
    return builtin_config("tiny").model


def variant(name: str) -> ModelConfig:
    """The tiny model config with one feature switched off or changed."""
    model = tiny()
    if name == "tiny":
        return model
    if name == "no_jacobian":
        return dataclasses.replace(model, detector=dataclasses.replace(model.detector, estimate_jacobian=False))
    if name == "no_occlusion":
        return dataclasses.replace(model, dense_motion=dataclasses.replace(model.dense_motion, estimate_occlusion=False))
    if name == "no_background":
        return dataclasses.replace(model, dense_motion=dataclasses.replace(model.dense_motion, background_motion=False))
    if name == "one_keypoint":
        return dataclasses.replace(model, detector=dataclasses.replace(model.detector, num_keypoints=1))
    if name == "sizes_differ":  # generator at 64 px, detector at 32, dense motion at 16
        return dataclasses.replace(
            model, image_size=64,
            dense_motion=dataclasses.replace(model.dense_motion, input_size=16, num_blocks=2),
        )
    if name == "blend":
        return dataclasses.replace(model, generator=dataclasses.replace(model.generator, blend=True))
    raise ValueError(name)


VARIANTS = ["tiny", "no_jacobian", "no_occlusion", "no_background", "one_keypoint", "sizes_differ", "blend"]


def _check_keypoints(out: KeypointOutput, b: int, k: int) -> None:
    assert out.keypoints.shape == (b, k, 2)
    assert out.jacobians.shape == (b, k, 2, 2)
    assert out.covariances.shape == (b, k, 2, 2)
    assert out.scores.shape == (b, k)
    assert out.heatmaps.shape[:2] == (b, k)
    for tensor in out:
        assert torch.isfinite(tensor).all()
    assert torch.allclose(out.heatmaps.sum(dim=(2, 3)), torch.ones(b, k), atol=1e-4)
    assert (out.heatmaps >= 0).all()
    assert (out.scores >= 0).all() and (out.scores <= 1).all()
    assert (out.keypoints.abs() <= 1).all()
    # Covariances are symmetric positive semi-definite.
    assert torch.allclose(out.covariances, out.covariances.transpose(-1, -2), atol=1e-6)
    assert (torch.linalg.eigvalsh(out.covariances.double()) > -1e-7).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_fomm_forward_shapes_and_finiteness(name: str) -> None:
    torch.manual_seed(0)
    config = variant(name)
    model = FOMM(config)
    b, s, k = 2, config.image_size, config.detector.num_keypoints
    source, driving = torch.rand(b, 3, s, s), torch.rand(b, 3, s, s)
    out = model(source, driving)
    assert out.prediction.shape == (b, 3, s, s)
    assert out.deformed.shape == (b, 3, s, s)
    assert torch.isfinite(out.prediction).all() and torch.isfinite(out.deformed).all()
    assert (out.prediction >= 0).all() and (out.prediction <= 1).all()
    _check_keypoints(out.kp_source, b, k)
    _check_keypoints(out.kp_driving, b, k)
    size = config.dense_motion.input_size
    assert out.motion.flow.shape == (b, size, size, 2)
    assert out.motion.masks.shape == (b, k + 1, size, size)
    assert torch.allclose(out.motion.masks.sum(dim=1), torch.ones(b, size, size), atol=1e-4)
    if config.dense_motion.estimate_occlusion:
        assert out.motion.occlusion.shape == (b, 1, size, size)
        assert (out.motion.occlusion >= 0).all() and (out.motion.occlusion <= 1).all()
    else:
        assert out.motion.occlusion is None
    if config.dense_motion.background_motion:
        assert out.background.shape == (b, 2, 3)
        # Initialised to the identity: no camera motion before training.
        assert torch.allclose(out.background, torch.eye(2, 3).expand(b, 2, 3), atol=1e-6)
    else:
        assert out.background is None
    if not config.detector.estimate_jacobian:
        assert torch.equal(out.kp_source.jacobians, torch.eye(2).expand(b, k, 2, 2))
    if config.generator.blend or config.dense_motion.estimate_occlusion:
        assert out.visibility.shape == (b, 1, s, s)
        assert (out.visibility >= 0).all() and (out.visibility <= 1).all()
    else:
        assert out.visibility is None
    # Gradients reach every trainable parameter and are finite.
    loss = (out.prediction - driving).abs().mean() + out.kp_driving.keypoints.square().mean()
    loss.backward()
    for name_, parameter in model.named_parameters():
        assert parameter.grad is not None, name_
        assert torch.isfinite(parameter.grad).all(), name_


def test_detector_jacobians_start_at_identity() -> None:
    detector = KeypointDetector(tiny().detector).eval()
    out = detector(torch.rand(3, 3, 32, 32))
    assert torch.allclose(out.jacobians, torch.eye(2).expand(3, 4, 2, 2), atol=1e-5)


@pytest.mark.parametrize("shape", [(40, 56), (32, 32), (100, 30), (17, 23)])
def test_detector_accepts_any_input_size(shape: tuple[int, int]) -> None:
    config = tiny().detector
    detector = KeypointDetector(config).eval()
    with torch.no_grad():
        out = detector(torch.rand(2, 3, *shape))
    _check_keypoints(out, 2, config.num_keypoints)
    assert out.heatmaps.shape[-2:] == (config.input_size, config.input_size)


def test_detector_rejects_wrong_rank() -> None:
    detector = KeypointDetector(tiny().detector)
    with pytest.raises(ValueError, match="B, C, H, W"):
        detector(torch.rand(3, 32, 32))


def test_detector_in_eval_mode_is_independent_of_the_batch() -> None:
    torch.manual_seed(1)
    detector = KeypointDetector(tiny().detector)
    detector.train()
    detector(torch.rand(8, 3, 32, 32))  # move the batch-norm running statistics off their init
    detector.eval()
    frames = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        together = detector(frames)
        alone = [detector(frames[i : i + 1]) for i in range(5)]
    for i in range(5):
        assert torch.allclose(together.keypoints[i], alone[i].keypoints[0], atol=1e-5)
        assert torch.allclose(together.jacobians[i], alone[i].jacobians[0], atol=1e-5)


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_builtin_detectors_run(name: str) -> None:
    """The shipped configs' detectors on one frame each (the full gpu model is too slow here)."""
    config = builtin_config(name).model
    detector = KeypointDetector(config.detector).eval()
    with torch.no_grad():
        out = detector(torch.rand(1, 3, config.image_size, config.image_size))
    _check_keypoints(out, 1, config.detector.num_keypoints)


def test_cpu_model_forward() -> None:
    config = builtin_config("cpu").model
    model = FOMM(config).eval()
    s = config.image_size
    with torch.no_grad():
        out = model(torch.rand(1, 3, s, s), torch.rand(1, 3, s, s))
    assert out.prediction.shape == (1, 3, s, s)
    assert torch.isfinite(out.prediction).all()


def test_hourglass_channels() -> None:
    hourglass = Hourglass(in_channels=5, block_expansion=4, num_blocks=3, max_features=12)
    out = hourglass(torch.rand(2, 5, 16, 24))
    assert out.shape == (2, 4 + 5, 16, 24)
    assert hourglass.out_channels == 9


def _keypoints(points: torch.Tensor, jacobians: torch.Tensor | None = None) -> KeypointOutput:
    b, k = points.shape[:2]
    jac = torch.eye(2).expand(b, k, 2, 2) if jacobians is None else jacobians
    zeros = torch.zeros(b, k, 2, 2)
    return KeypointOutput(points, jac, torch.zeros(b, k, 4, 4), zeros, torch.ones(b, k))


def test_sparse_motions_identity_and_translation() -> None:
    h = w = 8
    grid = coordinate_grid(h, w)
    kp = torch.tensor([[[0.1, -0.2], [-0.5, 0.4]]])
    same = sparse_motions(_keypoints(kp), _keypoints(kp), h, w, background=None)
    assert same.shape == (1, 3, h, w, 2)
    assert torch.allclose(same, grid.expand(1, 3, h, w, 2), atol=1e-6)
    # The driving keypoints moved by d: each keypoint's motion samples the source at z - d.
    shift = torch.tensor([0.2, -0.1])
    moved = sparse_motions(_keypoints(kp), _keypoints(kp + shift), h, w, background=None)
    assert torch.allclose(moved[:, 0], grid.unsqueeze(0), atol=1e-6)  # background slot: identity
    assert torch.allclose(moved[:, 1:], (grid - shift).expand(1, 2, h, w, 2), atol=1e-6)
    # A learned background affine replaces the identity in slot 0.
    theta = torch.tensor([[[1.0, 0.0, 0.3], [0.0, 1.0, -0.2]]])
    with_bg = sparse_motions(_keypoints(kp), _keypoints(kp), h, w, background=theta)
    assert torch.allclose(with_bg[:, 0], grid.unsqueeze(0) + torch.tensor([0.3, -0.2]), atol=1e-6)


def test_sparse_motions_first_order_term() -> None:
    """With J_src = A and J_drv = I, a point at kp_drv + v samples the source at kp_src + A v."""
    h = w = 6
    grid = coordinate_grid(h, w)
    kp_src = torch.tensor([[[0.2, 0.1]]])
    kp_drv = torch.tensor([[[-0.3, 0.25]]])
    a = torch.tensor([[[[1.2, 0.3], [-0.1, 0.8]]]])
    motions = sparse_motions(_keypoints(kp_src, a), _keypoints(kp_drv), h, w, background=None)
    expected = kp_src.view(1, 1, 1, 2) + torch.einsum("ij,hwj->hwi", a[0, 0], grid - kp_drv.view(1, 1, 2))
    assert torch.allclose(motions[0, 1], expected[0], atol=1e-6)


def test_dense_motion_and_generator_alone() -> None:
    config = tiny()
    k = config.detector.num_keypoints
    torch.manual_seed(0)
    dense = DenseMotionNetwork(config.dense_motion, k)
    kp = _keypoints(torch.rand(2, k, 2) * 2 - 1)
    motion = dense(torch.rand(2, 3, 48, 48), kp, kp)
    size = config.dense_motion.input_size
    assert motion.flow.shape == (2, size, size, 2)
    # With source and driving keypoints equal and no background motion, every candidate motion is
    # the identity, so the mixed flow is the identity grid whatever the masks.
    assert torch.allclose(motion.flow, coordinate_grid(size, size).expand(2, size, size, 2), atol=1e-5)
    generator = Generator(config.generator)
    out = generator(torch.rand(2, 3, 48, 48), motion.flow, motion.occlusion)
    assert out.prediction.shape == (2, 3, 48, 48)
    assert torch.isfinite(out.prediction).all()


def test_generator_identity_flow_deforms_nothing() -> None:
    generator = Generator(tiny().generator)
    source = torch.rand(1, 3, 32, 32)
    flow = coordinate_grid(16, 16).unsqueeze(0)  # a coarser flow is resized to the image first
    out = generator(source, flow, None)
    assert torch.allclose(out.deformed, source, atol=1e-5)


def test_warp_of_a_coarse_translation_flow_shifts_the_image() -> None:
    from fomm_kp.models.generator import warp

    source = torch.rand(1, 3, 32, 32)
    shift_pixels = 2
    flow = coordinate_grid(8, 8).unsqueeze(0) + torch.tensor([2 * shift_pixels / 32, 0.0])
    shifted = warp(source, flow)  # shifted(z) = source(z + d)
    assert torch.allclose(shifted[..., :-shift_pixels], source[..., shift_pixels:], atol=1e-5)


def test_detector_may_look_at_finer_frames_than_the_generator_reconstructs() -> None:
    """detector.input_size 64 with image_size 32: frames come at frame_size 64, the reconstruction is 32 px."""
    model = builtin_config("tiny").model
    config = dataclasses.replace(model, image_size=32, detector=dataclasses.replace(
        model.detector, input_size=64, head_kernel=3))
    assert config.frame_size == 64
    network = FOMM(config)
    frames = torch.rand(2, 3, 64, 64)
    out = network(frames, frames.flip(-1))
    assert out.prediction.shape == (2, 3, 32, 32)
    assert out.kp_source.heatmaps.shape[-1] == 64
    assert torch.isfinite(out.prediction).all()


def test_blend_generator_composes_warped_source_and_decoder() -> None:
    torch.manual_seed(0)
    config = variant("blend").generator
    generator = Generator(config)
    source = torch.rand(2, 3, 32, 32)
    flow = coordinate_grid(16, 16).unsqueeze(0).expand(2, -1, -1, -1) + 0.1
    out = generator(source, flow, torch.rand(2, 1, 16, 16))
    assert out.visibility.shape == (2, 1, 32, 32)
    # Where the mask says "visible" the output is the warped source pixel: push the mask to 1.
    with torch.no_grad():
        generator.mask.bias.fill_(50.0)
    out = generator(source, flow, None)
    torch.testing.assert_close(out.prediction, out.deformed, atol=1e-6, rtol=0)
    with torch.no_grad():
        generator.mask.bias.fill_(-50.0)
    out = generator(source, flow, None)
    assert (out.prediction - out.deformed).abs().mean() > 0.05  # the decoder's own pixels
