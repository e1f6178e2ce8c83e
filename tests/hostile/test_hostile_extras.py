"""A missing optional extra (simulated: the module is made unimportable) is one ``error:`` line that
names the ``pip install "fomm_kp[...]"`` command, before any work or output."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_refused


@pytest.fixture(scope="module")
def exported(hostile_world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world's checkpoint exported to ONNX (the deploy extra is installed here)."""
    pytest.importorskip("onnx")
    from fomm_kp.runtime.networks import load_detector
    from fomm_kp.runtime.onnx_graph import export_onnx

    path = tmp_path_factory.mktemp("exported") / "model.onnx"
    export_onnx(load_detector(hostile_world.folder / "checkpoint.pt"), path)
    return path


TRACK = ["track", "{video}", "-m", "{ckpt}"]
CASES = {
    # (modules made missing, command, extra named)
    "export-no-onnx": (["onnx"], ["export", "{ckpt}", "--onnx", "{out}/m.onnx"], "deploy"),
    "export-no-onnxruntime": (["onnxruntime"], ["export", "{ckpt}", "--onnx", "{out}/m.onnx"], "deploy"),
    "track-onnx-file-no-onnx": (["onnx"], ["track", "{video}", "-m", "{onnx}", "-o", "{out}/t.npz"], "deploy"),
    "track-onnx-file-no-onnxruntime": (["onnxruntime"], ["track", "{video}", "-m", "{onnx}", "-o", "{out}/t.npz"],
                                       "deploy"),
    "track-backend-onnx-no-onnxruntime": (["onnxruntime"], TRACK + ["--backend", "onnx", "-o", "{out}/t.npz"], "deploy"),
    "track-backend-onnx-no-onnx": (["onnx"], TRACK + ["--backend", "onnx", "-o", "{out}/t.npz"], "deploy"),
    "track-slp-no-sleap-io": (["sleap_io"], TRACK + ["-o", "{out}/t.slp"], "interop"),
    "track-nwb-no-pynwb": (["pynwb"], TRACK + ["-o", "{out}/t.nwb"], "interop"),
    "track-nwb-no-ndx-pose": (["ndx_pose"], TRACK + ["-o", "{out}/t.nwb"], "interop"),
    "features-slp-no-sleap-io": (["sleap_io"], ["features", "{dir}/tracks.slp", "-o", "{out}/f.npz"], "interop"),
    "features-nwb-no-pynwb": (["pynwb"], ["features", "{dir}/tracks.nwb", "-o", "{out}/f.npz"], "interop"),
    "features-h5-no-h5py": (["h5py"], ["features", "{dir}/tracks.h5", "-o", "{out}/f.npz"], "interop"),
    "fit-h5-no-h5py": (["h5py"], ["fit", "--clip", "a={dir}/tracks.h5", "--clip", "b={npz}", "-o", "{out}/c.npz"],
                       "interop"),
    "classify-slp-no-sleap-io": (["sleap_io"], ["classify", "{dir}/tracks.slp", "--classifier", "{clf}"], "interop"),
    "score-nwb-no-pynwb": (["pynwb"], ["score", "{dir}/tracks.nwb", "--classifier", "{clf}", "-o", "{out}/r"],
                           "interop"),
    "motifs-h5-no-h5py": (["h5py"], ["motifs", "{dir}/tracks.h5", "-o", "{out}/m"], "interop"),
    "keypoints-h5-no-h5py": (["h5py"], ["evaluate", "keypoints", "{dir}/labels.h5", "--tracks", "{npz}"], "interop"),
    "keypoints-slp-no-sleap-io": (["sleap_io"], ["evaluate", "keypoints", "{dir}/labels.slp", "--tracks", "{npz}"],
                                  "interop"),
    "keypoints-tracks-slp-no-sleap-io": (["sleap_io"], ["evaluate", "keypoints", "{csv}", "--tracks",
                                                        "{dir}/tracks.slp"], "interop"),
    "reconstruction-dlib": (["dlib"], ["evaluate", "reconstruction", "{video}", "-m", "{ckpt}", "--landmarks", "dlib"],
                            "faces"),
    "reconstruction-face-alignment": (["face_alignment"], ["evaluate", "reconstruction", "{video}", "-m", "{ckpt}",
                                                            "--landmarks", "face-alignment"], "faces-fan"),
    "reconstruction-auto-none": (["dlib", "face_alignment"], ["evaluate", "reconstruction", "{video}", "-m", "{ckpt}",
                                                               "--landmarks", "auto"], "faces"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_missing_extra_is_one_line_naming_the_install(case: str, hostile_world, exported: Path, tmp_path: Path,
                                                      capsys, monkeypatch) -> None:
    modules, args, extra = CASES[case]
    for name in ("tracks.slp", "tracks.nwb", "tracks.h5", "labels.h5", "labels.slp"):
        (tmp_path / name).write_bytes(b"stand-in: the reader must stop at the missing package first")
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # import module -> ImportError
    filled = [a.replace("{dir}", str(tmp_path)).replace("{onnx}", str(exported)) for a in args]
    line = assert_refused(hostile_world, filled, tmp_path / "out", capsys, monkeypatch,
                          f'pip install "fomm_kp[{extra}]"')
    assert np.any([module in line for module in modules]), line
