"""ONNX export of teacher and student: round trip against PyTorch, the checker, TensorRT 8.5 limits,
metadata, eval-mode batch norm, and a clear error when TensorRT is absent."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from fomm_kp.config import builtin_config, to_dict
from fomm_kp.crops import CropSettings
from fomm_kp.deploy.onnx_checks import check_onnx, compare_onnx
from fomm_kp.deploy.tensorrt import EngineOptions, build_tensorrt_engine, export_tensorrt
from fomm_kp.errors import FommError
from fomm_kp.geometry import inverse_2x2
from fomm_kp.models.student import StudentConfig, StudentDetector
from fomm_kp.runtime.networks import LoadedDetector, load_detector
from fomm_kp.runtime.onnx_graph import export_onnx, onnx_session, read_onnx_metadata

from conftest import random_teacher_checkpoint, randomise_batch_norm, run_cli

SMALL = StudentConfig(num_keypoints=3, input_size=32, heatmap_size=32, stem_stride=2, head_stride=2, widths=(8, 8, 16, 16),
                      blocks_per_stage=(0, 1, 0, 1), decoder_width=8)


@pytest.fixture
def student() -> LoadedDetector:
    torch.manual_seed(0)
    module = StudentDetector(SMALL)
    randomise_batch_norm(module)
    return LoadedDetector(module.eval(), builtin_config("tiny"), CropSettings(), {"localized": False}, "student", "memory")


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("teacher") / "checkpoint.pt"
    return random_teacher_checkpoint(path, {"localized": False, "fixed_crop": [], "box_side": 32.0})


def test_student_round_trip_dynamic_batch(student: LoadedDetector, tmp_path: Path) -> None:
    path = tmp_path / "student.onnx"
    export_onnx(student, path)
    diffs = compare_onnx(student, path, batch_sizes=(1, 5))
    assert max(diffs.values()) < 1e-4, diffs
    model = onnx.load(str(path))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 32, 32]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim][1:] == [3, 2]


def test_student_round_trip_static_batch(student: LoadedDetector) -> None:
    data = export_onnx(student, dynamic_batch=False, batch_size=3)
    model = onnx.load_from_string(data)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [3, 3, 32, 32]
    assert max(compare_onnx(student, data).values()) < 1e-4


def test_teacher_round_trip_matches_its_own_forward(teacher_checkpoint: Path) -> None:
    teacher = load_detector(teacher_checkpoint)
    assert teacher.kind == "teacher" and teacher.input_size == 32
    data = export_onnx(teacher)
    # compare_onnx runs the teacher's own forward (with einsum statistics) as the reference.
    diffs = compare_onnx(teacher, data, batch_sizes=(1, 4))
    assert max(diffs.values()) < 1e-4, diffs
    check = check_onnx(data)
    assert check.ok, check.format()
    assert "Einsum" not in check.op_counts and "Resize" in check.op_counts  # hourglass upsampling only
    info = read_onnx_metadata(onnx.load_from_string(data))
    assert (info.kind, info.input_size, info.crop.box_side) == ("teacher", 32, 32.0)
    assert to_dict(info.config) == to_dict(teacher.config)


def test_export_uses_eval_mode_batch_norm(student: LoadedDetector) -> None:
    student.network.train()  # forgotten .eval(): the export must not keep batch statistics
    data = export_onnx(student)
    session = onnx_session(data, threads=1)
    images = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    together = session.run(["keypoints"], {"images": images})[0]
    alone = session.run(["keypoints"], {"images": images[:1]})[0]
    np.testing.assert_allclose(together[:1], alone, atol=1e-5)  # no batch statistics in the graph
    with torch.no_grad():
        reference = student.network.eval()(torch.from_numpy(images)).keypoints.numpy()
    np.testing.assert_allclose(together, reference, atol=1e-4)


def test_our_exports_pass_tensorrt_limits(student: LoadedDetector) -> None:
    check = check_onnx(export_onnx(student))
    assert check.ok, check.format()
    assert check.checker_error is None and not check.tensorrt_errors
    assert "Einsum" not in check.op_counts and "Resize" in check.op_counts
    assert "passed" in check.format()


def _graph(nodes: list, inputs: list, outputs: list, opset: int = 17, initializers: list | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers or [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_check_catches_an_unsupported_operator() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    model = _graph([helper.make_node("Det", ["x"], ["y"], name="determinant")], [x], [y])
    check = check_onnx(model)
    assert check.checker_error is None  # valid ONNX ...
    assert not check.ok  # ... that TensorRT 8.5 cannot parse
    assert any("Det" in e and "not supported" in e for e in check.tensorrt_errors)
    assert "Det" in check.format() and "problem" in check.format()


def test_check_catches_opset_custom_domain_uint8_input_and_einsum() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    relu = helper.make_node("Relu", ["x"], ["y"])
    assert check_onnx(_graph([relu], [x], [y], opset=17)).ok
    assert any("opset 18" in e for e in check_onnx(_graph([relu], [x], [y], opset=18)).tensorrt_errors)

    inverse = helper.make_node("Inverse", ["x"], ["y"], domain="com.microsoft")
    custom = _graph([inverse], [x], [y])
    custom.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    assert any("custom domain" in e for e in check_onnx(custom).tensorrt_errors)

    u8 = helper.make_tensor_value_info("u", TensorProto.UINT8, [2, 3])
    cast = helper.make_node("Cast", ["u"], ["y"], to=TensorProto.FLOAT)
    assert any("UINT8" in e for e in check_onnx(_graph([cast], [u8], [y])).tensorrt_errors)

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 3])
    out = helper.make_tensor_value_info("o", TensorProto.FLOAT, [2])
    einsum = helper.make_node("Einsum", ["a", "b", "c"], ["o"], equation="ij,ij,ij->i")
    assert any("Einsum" in e for e in check_onnx(_graph([einsum], [a, b, c], [out])).tensorrt_errors)


def test_check_catches_the_teachers_native_einsum_head(teacher_checkpoint: Path) -> None:
    """Exporting the teacher's own forward (three-operand einsum covariance) is what the
    DetectorGraph wrapper avoids; the check must notice it."""
    import io
    import warnings

    teacher = load_detector(teacher_checkpoint)

    class Native(torch.nn.Module):
        def __init__(self, detector: torch.nn.Module) -> None:
            super().__init__()
            self.detector = detector

        def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.detector(images)
            return out.keypoints, out.covariances

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Native(teacher.network), (torch.rand(1, 3, 32, 32),), buffer, dynamo=False, opset_version=17)
    check = check_onnx(buffer.getvalue())
    assert not check.ok and any("Einsum" in e for e in check.tensorrt_errors)


def test_check_reports_invalid_onnx() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    broken = _graph([helper.make_node("Relu", ["missing"], ["y"])], [x], [y])
    check = check_onnx(broken)
    assert check.checker_error is not None and not check.ok


def test_closed_form_inverse_matches_torch() -> None:
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(500, 2, 2, generator=g, dtype=torch.float64))
    singular_values = 0.2 + 2 * torch.rand(500, 2, generator=g, dtype=torch.float64)  # condition number <= 11
    matrices = q @ torch.diag_embed(singular_values) @ q.transpose(1, 2).flip(-1)
    expected = torch.linalg.inv(matrices)
    assert torch.allclose(inverse_2x2(matrices), expected, rtol=1e-10, atol=1e-10)
    assert torch.allclose(inverse_2x2(matrices.float()), expected.float(), rtol=1e-4, atol=1e-5)


def test_tensorrt_absent_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch, student: LoadedDetector,
                                              tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    data = export_onnx(student)
    with pytest.raises(FommError, match=r"TensorRT's Python package is not importable.*jetson_build_engine\.sh"):
        build_tensorrt_engine(data, tmp_path / "model.engine")
    with pytest.raises(FommError, match="TensorRT"):
        export_tensorrt(student, data, tmp_path / "model.engine", EngineOptions(precision="int8"))
    assert not (tmp_path / "model.engine").exists()


def test_cli_export_writes_checked_onnx_and_explains_missing_tensorrt(
    teacher_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    onnx_path = tmp_path / "teacher.onnx"
    code, out, err = run_cli(["export", str(teacher_checkpoint), "--onnx", str(onnx_path)], capsys, monkeypatch)
    assert code == 0, err
    assert onnx_path.is_file() and "ONNX checker: passed" in out and "TensorRT 8.5" in out
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    code, out, err = run_cli(["export", str(teacher_checkpoint), "--onnx", str(tmp_path / "b.onnx"),
                              "--tensorrt", str(tmp_path / "b.engine"), "--fp16"], capsys, monkeypatch)
    assert code == 2 and "error: TensorRT's Python package is not importable" in err
    assert not (tmp_path / "b.onnx").exists() and not (tmp_path / "b.engine").exists()  # a failed export writes nothing
    code, out, err = run_cli(["export", str(teacher_checkpoint), "--onnx", str(tmp_path / "c.onnx"), "--int8"],
                             capsys, monkeypatch)
    assert code == 2 and "--tensorrt" in err
