"""The student detector: shapes, the exact low-resolution heatmap head, config round trips, FLOPs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from fomm_kp.config import DetectorConfig, builtin_config, to_dict
from fomm_kp.errors import FommError
from fomm_kp.geometry import heatmap_statistics
from fomm_kp.models import KeypointDetector
from fomm_kp.models.student import (
    StudentConfig,
    StudentDetector,
    count_flops,
    count_parameters,
    heatmap_head_outputs,
    student_config_for,
)
from fomm_kp.settings import from_data

SMALL = StudentConfig(num_keypoints=3, input_size=32, heatmap_size=32, stem_stride=2, head_stride=2, widths=(8, 8, 16, 16),
                      blocks_per_stage=(0, 1, 0, 1), decoder_width=8)


@pytest.mark.parametrize("config", [
    SMALL, StudentConfig(), dataclasses.replace(SMALL, head_stride=4), dataclasses.replace(SMALL, estimate_jacobian=False),
    StudentConfig(num_keypoints=2, input_size=64, heatmap_size=32, stem_stride=4, widths=(8, 8, 8), blocks_per_stage=(0, 0, 1),
                  decoder_width=8, head_stride=4),
])
def test_output_shapes_and_conventions(config: StudentConfig) -> None:
    torch.manual_seed(0)
    student = StudentDetector(config).eval()
    k, s = config.num_keypoints, config.heatmap_size
    out = student(torch.rand(2, 3, config.input_size, config.input_size))
    assert out.keypoints.shape == (2, k, 2) and out.jacobians.shape == (2, k, 2, 2)
    assert out.heatmaps.shape == (2, k, s, s) and out.covariances.shape == (2, k, 2, 2) and out.scores.shape == (2, k)
    assert all(torch.isfinite(t).all() for t in out)
    assert torch.allclose(out.heatmaps.sum(dim=(2, 3)), torch.ones(2, k), atol=1e-5)
    assert out.keypoints.abs().max() < 1 and ((out.scores >= 0) & (out.scores <= 1)).all()
    # The reported statistics are those of the reported heatmaps, in geometry's definition.
    keypoints, covariances, scores = heatmap_statistics(out.heatmaps)
    assert torch.allclose(keypoints, out.keypoints, atol=1e-5)
    assert torch.allclose(covariances, out.covariances, atol=1e-6)
    assert torch.allclose(scores, out.scores, atol=1e-5)
    if not config.estimate_jacobian:
        assert torch.equal(out.jacobians, torch.eye(2).expand(2, k, 2, 2))


@pytest.mark.parametrize("upscale", [1, 2, 4])
def test_low_resolution_head_is_exact_for_nearest_upsampled_logits(upscale: int) -> None:
    torch.manual_seed(1)
    logits = 3 * torch.randn(2, 4, 8, 8)
    raw = torch.randn(2, 16, 8, 8)
    out = heatmap_head_outputs(logits, raw, temperature=0.1, upscale=upscale)
    fine = F.interpolate(logits, scale_factor=upscale, mode="nearest")
    heatmaps = torch.softmax(fine.flatten(2) / 0.1, dim=2).view_as(fine)
    keypoints, covariances, scores = heatmap_statistics(heatmaps)
    fine_raw = F.interpolate(raw, scale_factor=upscale, mode="nearest").view(2, 4, 4, *fine.shape[2:])
    jacobians = (fine_raw * heatmaps.unsqueeze(2)).sum(dim=(3, 4)).view(2, 4, 2, 2)
    assert torch.allclose(out.heatmaps, heatmaps, atol=1e-7)
    assert torch.allclose(out.keypoints, keypoints, atol=1e-6)
    assert torch.allclose(out.covariances, covariances, atol=1e-6)
    assert torch.allclose(out.scores, scores, atol=1e-5)
    assert torch.allclose(out.jacobians, jacobians, atol=1e-5)


def test_wrong_input_size_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        StudentDetector(SMALL)(torch.rand(1, 3, 64, 64))


def test_config_round_trip_and_validation() -> None:
    assert from_data(StudentConfig, to_dict(SMALL)) == SMALL
    with pytest.raises(FommError, match="unknown key 'depth'"):
        from_data(StudentConfig, {**to_dict(SMALL), "depth": 3})
    with pytest.raises(FommError, match="input_size must be a multiple of 32"):
        StudentConfig(input_size=40)
    with pytest.raises(FommError, match="blocks_per_stage must be"):
        StudentConfig(widths=(8, 16), blocks_per_stage=(0,))
    teacher = DetectorConfig(num_keypoints=7, input_size=96, temperature=0.2, estimate_jacobian=False)
    student = student_config_for(teacher)
    assert (student.num_keypoints, student.input_size, student.heatmap_size, student.temperature,
            student.estimate_jacobian, student.stem_stride) == (7, 192, 96, 0.2, False, 4)
    same = student_config_for(teacher, input_scale=1)
    assert (same.input_size, same.heatmap_size, same.stem_stride, same.head_stride) == (96, 96, 2, 2)
    for config in (student, same):  # both put the head at half the teacher's heatmap side
        assert config.input_size // config.head_stride == 48
    with pytest.raises(FommError, match="input_scale"):
        student_config_for(teacher, input_scale=3)
    with pytest.raises(FommError, match="stem_stride"):
        StudentConfig(stem_stride=8)


def test_flop_counter_counts_convolutions() -> None:
    conv = torch.nn.Conv2d(3, 5, 3, padding=1)
    assert count_flops(conv, 10) == 2 * 3 * 5 * 9 * 10 * 10
    assert count_parameters(conv) == 3 * 5 * 9 + 5


def test_default_student_is_a_tenth_of_the_cpu_teacher() -> None:
    teacher_config = builtin_config("cpu").model.detector
    teacher = KeypointDetector(teacher_config)
    student_config = student_config_for(teacher_config)
    student = StudentDetector(student_config)
    teacher_flops = count_flops(teacher, teacher_config.input_size)
    student_flops = count_flops(student, student_config.input_size)
    assert student_flops <= teacher_flops / 10
    assert student_flops <= 0.5e9
    assert count_parameters(student) < count_parameters(teacher) / 10
