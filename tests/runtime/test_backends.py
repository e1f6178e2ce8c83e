"""Runtime backends: torch, ONNX Runtime and TensorRT behind one interface; tracking results agree."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fomm_kp import api
from fomm_kp.checkpoint import save_checkpoint
from fomm_kp.config import builtin_config, to_dict
from fomm_kp.crops import CropSettings
from fomm_kp.errors import FommError
from fomm_kp.images import frames_to_array
from fomm_kp.models.student import StudentConfig, StudentDetector
from fomm_kp.runtime import Model
from fomm_kp.runtime.backends import DetectorModel, OnnxBackend, TorchBackend
from fomm_kp.runtime.loading import resolve_backend
from fomm_kp.runtime.networks import LoadedDetector, load_detector
from fomm_kp.runtime.onnx_graph import export_onnx
from fomm_kp.tracks import load_tracks

from conftest import SyntheticClip, random_teacher_checkpoint, randomise_batch_norm, run_cli

STUDENT = StudentConfig(num_keypoints=4, input_size=32, heatmap_size=32, stem_stride=2, head_stride=2, widths=(8, 8, 16, 16),
                        blocks_per_stage=(0, 1, 0, 1), decoder_width=8)
META = {"localized": False, "fixed_crop": [], "box_side": 48.0}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random tiny teacher checkpoint and a random student checkpoint for it."""
    folder = tmp_path_factory.mktemp("models")
    teacher = random_teacher_checkpoint(folder / "teacher.pt", META)
    config = builtin_config("tiny")
    student_net = StudentDetector(STUDENT)
    randomise_batch_norm(student_net)
    student = save_checkpoint(folder / "student.pt", config, {"student": student_net.state_dict()}, 5,
                              {**META, "kind": "student", "student_config": to_dict(STUDENT)})
    return Path(teacher), Path(student)


def test_student_checkpoint_loads_with_weights_only(checkpoints: tuple[Path, Path]) -> None:
    payload = torch.load(checkpoints[1], weights_only=True)
    assert payload["meta"]["kind"] == "student"
    detector = load_detector(checkpoints[1])
    assert detector.kind == "student" and detector.input_size == 32 and detector.num_keypoints == 4
    assert not detector.network.training


def test_frames_to_array() -> None:
    crops = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    images = frames_to_array(crops, 8)
    assert images.shape == (2, 3, 8, 8) and images.dtype == np.float32
    np.testing.assert_allclose(images[1, 2], crops[1, :, :, 2] / 255, atol=1e-7)
    with pytest.raises(FommError, match="uint8"):
        frames_to_array(crops.astype(np.float32), 8)
    with pytest.raises(FommError, match=r"\(B, 16, 16, 3\)"):
        frames_to_array(crops, 16)


@pytest.mark.parametrize("which", [0, 1])
def test_torch_and_onnx_backends_agree(checkpoints: tuple[Path, Path], which: int) -> None:
    detector = load_detector(checkpoints[which])
    torch_backend = TorchBackend(detector.network)
    onnx_backend = OnnxBackend(export_onnx(detector), threads=1)
    crops = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    a, b = torch_backend(crops), onnx_backend(crops)
    for name, x, y in zip(a._fields, a, b):
        assert x.shape == y.shape, name
        np.testing.assert_allclose(x, y, atol=1e-4, err_msg=name)


def test_static_batch_onnx_runs_any_number_of_crops(checkpoints: tuple[Path, Path]) -> None:
    detector = load_detector(checkpoints[1])
    static = OnnxBackend(export_onnx(detector, dynamic_batch=False, batch_size=4), threads=1)
    assert static.fixed_batch == 4
    crops = np.random.default_rng(2).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    expected = TorchBackend(detector.network)(crops)
    got = static(crops)
    assert got.keypoints.shape == (10, 4, 2)
    np.testing.assert_allclose(got.keypoints, expected.keypoints, atol=1e-4)


def test_resolve_backend(checkpoints: tuple[Path, Path]) -> None:
    assert resolve_backend("auto", "student", "cpu") == "onnx"
    assert resolve_backend("auto", "teacher", "cpu") == "torch"
    assert resolve_backend("tensorrt", "student") == "tensorrt"
    with pytest.raises(FommError, match="backend must be one of"):
        resolve_backend("openvino", "student")


def test_load_model_kinds(checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    teacher, student = checkpoints
    assert isinstance(api.load_model(teacher), Model)
    assert isinstance(api.load_model(teacher, backend="torch", device="cpu"), Model)
    on_onnx = api.load_model(teacher, backend="onnx")
    assert isinstance(on_onnx, DetectorModel) and on_onnx.backend.name == "onnx"
    assert api.load_model(student, backend="torch").backend.name == "torch"
    assert api.load_model(student, device="cpu").backend.name == "onnx"  # the default for students
    assert api.load_model(student, backend="auto", device="cpu").backend.name == "onnx"
    # An exported file carries config and metadata: it tracks on its own.
    path = tmp_path / "student.onnx"
    export_onnx(load_detector(student), path)
    alone = api.load_model(path, backend="auto", device="cpu")
    assert alone.kind == "student" and alone.detector_size == 32 and alone.crop.box_side == 48.0
    teacher_onnx = tmp_path / "teacher.onnx"
    export_onnx(load_detector(teacher), teacher_onnx)
    assert api.load_model(teacher_onnx).backend.name == "onnx"
    with pytest.raises(FommError, match="runs on the onnx or tensorrt backend"):
        api.load_model(teacher_onnx, backend="torch")
    # An engine file from another model is refused.
    with pytest.raises(FommError, match="not exported from it"):
        api.load_model(student, backend="onnx", engine=_other_model_onnx(tmp_path))


def _other_model_onnx(tmp_path: Path) -> Path:
    other = StudentConfig(num_keypoints=2, input_size=32, heatmap_size=32, stem_stride=2, head_stride=2, widths=(8, 8, 8, 8),
                          blocks_per_stage=(0, 0, 0, 0), decoder_width=8)
    loaded = LoadedDetector(StudentDetector(other).eval(), builtin_config("tiny"), CropSettings.from_meta(META), META,
                            "student", "memory")
    path = tmp_path / "other.onnx"
    export_onnx(loaded, path)
    return path


def test_tensorrt_backend_absent_is_a_clear_error(checkpoints: tuple[Path, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(FommError, match="needs --engine"):
        api.load_model(checkpoints[1], backend="tensorrt")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not an engine")
    with pytest.raises(FommError, match="TensorRT's Python package is not importable"):
        api.load_model(checkpoints[1], backend="tensorrt", engine=engine)


@pytest.mark.parametrize("which", [0, 1])
def test_track_onnx_equals_torch(checkpoints: tuple[Path, Path], disc_clip: SyntheticClip, which: int) -> None:
    path = checkpoints[which]
    on_torch = api.track(disc_clip.path, api.load_model(path, backend="torch"), batch_size=8)
    on_onnx = api.track(disc_clip.path, api.load_model(path, backend="onnx"), batch_size=8)
    assert on_torch.keypoints.shape == on_onnx.keypoints.shape == (disc_clip.frames.shape[0], 1, 4, 2)
    np.testing.assert_array_equal(on_torch.frame_indices, on_onnx.frame_indices)
    # 1e-4 normalised units of a 64-px frame = 3e-3 px
    np.testing.assert_allclose(on_onnx.keypoints, on_torch.keypoints, atol=5e-3)
    np.testing.assert_allclose(on_onnx.scores, on_torch.scores, atol=1e-4)
    np.testing.assert_allclose(on_onnx.jacobians, on_torch.jacobians, atol=1e-3)
    np.testing.assert_allclose(on_onnx.covariances, on_torch.covariances, atol=1e-3)


def test_cli_track_backends_agree(checkpoints: tuple[Path, Path], disc_clip: SyntheticClip, tmp_path: Path,
                                  capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    results = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.npz"
        code, _, err = run_cli(["track", str(disc_clip.path), "-m", str(checkpoints[1]), "--out", str(out),
                                "--backend", backend], capsys, monkeypatch)
        assert code == 0, err
        results[backend] = load_tracks(out)
    np.testing.assert_allclose(results["onnx"].keypoints, results["torch"].keypoints, atol=5e-3)
    code, _, err = run_cli(["track", str(disc_clip.path), "-m", str(checkpoints[1]), "--backend", "tflite"],
                           capsys, monkeypatch)
    assert code == 2 and "error: backend must be one of" in err
