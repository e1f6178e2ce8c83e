"""Distillation: held-out split, augmentation, crops as tracking takes them, end to end (tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fomm_kp import api
from fomm_kp.checkpoint import save_checkpoint
from fomm_kp.config import builtin_config, to_dict
from fomm_kp.crops import CropSettings
from fomm_kp.deploy.distill import distill
from fomm_kp.deploy.distill_config import DistillConfig
from fomm_kp.deploy.samples import augment_crops, clips_heldout_split, heldout_split, join_clips, tracking_crops
from fomm_kp.deploy.targets import compare_detectors
from fomm_kp.errors import FommError
from fomm_kp.models import FOMM
from fomm_kp.models.student import StudentDetector, student_config_for
from fomm_kp.runtime.networks import load_detector

from conftest import disc_frames, run_cli, write_video

META = {"localized": False, "fixed_crop": [], "box_side": 64.0}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames, _ = disc_frames(num_frames=60, width=64, height=48, seed=3)
    return write_video(tmp_path_factory.mktemp("clip") / "disc60.mp4", frames, fps=10.0)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny teacher (32-px detector, 4 keypoints) with non-trivial batch-norm statistics."""
    torch.manual_seed(0)
    config = builtin_config("tiny")
    network = FOMM(config.model)
    g = torch.Generator().manual_seed(1)
    for m in network.detector.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.2 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    states = {"detector": network.detector.state_dict(), "dense_motion": network.dense_motion.state_dict(),
              "generator": network.generator.state_dict()}
    if network.background is not None:
        states["background"] = network.background.state_dict()
    return Path(save_checkpoint(tmp_path_factory.mktemp("teacher") / "teacher.pt", config, states, 0, META))


def test_heldout_split_blocks_and_guards() -> None:
    train, heldout = heldout_split(200, 0.1, 5, guard=2)
    assert len(heldout) == 20 and not set(train) & set(heldout)
    starts = [i for i in heldout if i - 1 not in heldout]
    assert len(starts) == 5 and max(starts) > 150 and min(starts) < 50  # spread over the clip
    for index in heldout:  # nothing within 2 samples of a held-out frame is trained on
        assert not {index - 2, index - 1, index + 1, index + 2} & set(train)
    assert len(train) == 200 - 20 - 5 * 4
    with pytest.raises(FommError, match="fraction"):
        heldout_split(100, 1.5, 5, 2)


def test_heldout_split_within_each_clip() -> None:
    train, heldout = clips_heldout_split([200, 60], 0.1, 5, 2)
    np.testing.assert_array_equal(train[train < 200], heldout_split(200, 0.1, 5, 2)[0])
    second = heldout_split(60, 0.1, 5, 2)
    np.testing.assert_array_equal(heldout[heldout >= 200], second[1] + 200)
    np.testing.assert_array_equal(train[train >= 200], second[0] + 200)
    assert not set(train) & set(heldout)


def test_distill_on_two_clips(clip: Path, teacher: Path, tmp_path: Path) -> None:
    detector = load_detector(teacher)
    other = write_video(tmp_path / "other.mp4", disc_frames(num_frames=20, width=64, height=48, seed=5)[0])
    parts = [tracking_crops(c, detector.crop, detector.config.data, 32, max_frames=60, extra_sizes=(48,))
             for c in (clip, other)]
    joined = join_clips(parts)
    assert joined.crops.shape == (80, 32, 32, 3) and joined.resized[48].shape == (80, 48, 48, 3)
    np.testing.assert_array_equal(joined.frame_indices[60:], np.arange(20))
    result = distill([clip, other], teacher, tmp_path / "student.pt",
                     DistillConfig(steps=2, batch_size=8, max_frames=60, augmented_copies=1), device="cpu")
    assert result.report["video"] == [str(clip), str(other)]
    assert result.report["heldout"]["frames"] > 0


def test_augment_identity_and_random() -> None:
    generator = torch.Generator().manual_seed(0)
    work = torch.rand(3, 3, 48, 48, generator=generator)
    still = DistillConfig(rotation=0, scale=0, shift=0, color_jitter=0, noise=0)
    big, small = augment_crops(work, (48, 24), still, generator)
    assert big.dtype == torch.uint8 and big.shape == (3, 48, 48, 3) and small.shape == (3, 24, 24, 3)
    expected = (work.clamp(0, 1) * 255).round().permute(0, 2, 3, 1)
    assert (big.float() - expected).abs().max() <= 1
    shrunk = F.interpolate(work, size=(24, 24), mode="bilinear", align_corners=False, antialias=True)
    assert (small.float() - (shrunk * 255).round().permute(0, 2, 3, 1)).abs().max() <= 1
    moved, _ = augment_crops(work, (48, 24), DistillConfig(), generator)
    assert (moved.float() - expected).abs().mean() > 5  # a real change


def test_tracking_crops_follow_the_model_meta(clip: Path, teacher: Path) -> None:
    detector = load_detector(teacher)
    data = tracking_crops(clip, detector.crop, detector.config.data, 32, max_frames=30, extra_sizes=(64,))
    assert data.crops.shape == (30, 32, 32, 3) and data.resized[64].shape == (30, 64, 64, 3)
    np.testing.assert_array_equal(data.frame_indices, np.arange(0, 60, 2))
    np.testing.assert_array_equal(data.boxes, np.tile([0, 0, 64, 48], (30, 1)))
    fixed = tracking_crops(clip, CropSettings(fixed_crop=(8, 4, 40, 36)), detector.config.data, 32, max_frames=60)
    np.testing.assert_array_equal(fixed.boxes[0], [8, 4, 40, 36])


@pytest.mark.slow
def test_distill_end_to_end(clip: Path, teacher: Path, tmp_path: Path) -> None:
    # A random teacher has near-uniform heatmaps, whose soft-argmax is an ill-conditioned target;
    # the heatmap term is kept small here so that 80 steps show the optimisation working.
    config = DistillConfig(steps=80, batch_size=16, max_frames=60, augmented_copies=1, holdout_blocks=3,
                           refresh_every=40, heatmap_weight=0.01)
    out = tmp_path / "student.pt"
    result = distill(clip, teacher, out, config, device="cpu")
    payload = torch.load(out, weights_only=True)
    meta = payload["meta"]
    assert meta["kind"] == "student" and CropSettings.from_meta(meta).box_side == 64.0 and "student_config" in meta
    report = result.report
    assert report["steps"] == 80 and report["heldout"]["frames"] > 0 and report["training_frames"]["frames"] > 0
    assert report["student_gflops"] < report["teacher_gflops"]
    assert report["losses_final"]["keypoints"] < 0.5 * report["losses_first_10_steps"]["keypoints"]
    student_config = student_config_for(load_detector(teacher).config.model.detector)
    assert result.model.detector_size == student_config.input_size == 64
    assert load_detector(out).network.config == student_config

    # The student tracks on every backend, with the same result (its input is 64 px, the teacher's 32).
    on_torch = api.track(clip, api.load_model(out, backend="torch"), batch_size=16)
    on_onnx = api.track(clip, api.load_model(out, backend="auto", device="cpu"), batch_size=16)
    assert on_onnx.keypoints.shape == (60, 1, 4, 2)
    np.testing.assert_allclose(on_onnx.keypoints, on_torch.keypoints, atol=5e-3)


def test_distill_refuses_a_student_as_teacher(clip: Path, tmp_path: Path) -> None:
    student_config = student_config_for(builtin_config("tiny").model.detector)
    path = save_checkpoint(tmp_path / "s.pt", builtin_config("tiny"), {"student": StudentDetector(student_config).state_dict()},
                           0, {**META, "kind": "student", "student_config": to_dict(student_config)})
    with pytest.raises(FommError, match="is a student checkpoint"):
        distill(clip, path, tmp_path / "out.pt", DistillConfig(steps=1))


@pytest.mark.slow
def test_cli_distill(clip: Path, teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    out, report = tmp_path / "student.pt", tmp_path / "report.json"
    code, stdout, err = run_cli(["distill", str(clip), "--teacher", str(teacher), "--out", str(out), "--steps", "5",
                            "--batch-size", "8", "--max-frames", "40", "--report", str(report)], capsys, monkeypatch)
    assert code == 0, err
    assert out.is_file() and "held-out student-teacher disagreement" in stdout and "GFLOPs/frame" in stdout
    assert json.loads(report.read_text())["steps"] == 5
    code, _, err = run_cli(["distill", str(clip), "--teacher", str(tmp_path / "missing.pt")], capsys, monkeypatch)
    assert code == 2 and "error: checkpoint not found" in err


def test_compare_detectors_units(teacher: Path) -> None:
    detector = load_detector(teacher)

    class Shifted(torch.nn.Module):
        """The teacher with every keypoint moved by 0.01 normalised units in x."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, images: torch.Tensor):
            out = self.inner(images)
            return out._replace(keypoints=out.keypoints + torch.tensor([0.01, 0.0]))

    crops = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    boxes = np.tile([10.0, 20.0, 210.0, 120.0], (5, 1))  # 200 × 100 px boxes
    same = compare_detectors(detector.network, detector.network, crops, crops, boxes, torch.device("cpu"))
    assert same["px256"]["max"] == 0 and same["jacobian_abs"] == 0 and same["frames"] == 5
    moved = compare_detectors(detector.network, Shifted(detector.network), crops, crops, boxes, torch.device("cpu"))
    assert moved["px256"]["mean"] == pytest.approx(1.28, abs=1e-4)  # 0.01 × 256 / 2
    assert moved["px_frame"]["mean"] == pytest.approx(1.0, abs=1e-4)  # 0.01 × 200 / 2
    assert moved["px256_per_keypoint"] == pytest.approx([1.28] * 4, abs=1e-4)
