"""Hostile input files: garbage, truncated, pickled or misshapen checkpoints, ONNX files, videos,
image folders, tracks, classifiers and label tables. Each is refused with one ``error:`` line, runs
no code (a payload would write a marker file), changes no input and leaves no output."""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from conftest import assert_refused, write_zero_frame_video


class _Payload:
    """Unpickling this writes the marker file: proof that a reader ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _torch_file(value) -> Callable[[Path, Path], None]:
    def make(path: Path, marker: Path) -> None:
        torch.save(value(marker) if callable(value) else value, path)
    return make


def _checkpoint_dict(world: Path, change: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def make(path: Path, marker: Path) -> None:
        payload = torch.load(world / "checkpoint.pt", weights_only=True)
        change(payload)
        torch.save(payload, path)
    return make


def _bytes(data: bytes) -> Callable[[Path, Path], None]:
    return lambda path, marker: path.write_bytes(data)


def _set(key: str, value) -> Callable[[dict], None]:
    def change(payload: dict) -> None:
        *parents, last = key.split(".")
        target = payload
        for name in parents:
            target = target[name]
        target[last] = value
    return change


def _drop_weights(payload: dict) -> None:
    payload["state_dicts"].pop("kp_detector", None)
    payload["state_dicts"] = {k: v for k, v in payload["state_dicts"].items() if k != "detector"}


def _fewer_keypoints(payload: dict) -> None:
    payload["config"]["model"]["detector"]["num_keypoints"] = 3


RANDOM = np.random.default_rng(0).bytes(5000)

CHECKPOINTS = {
    "empty": _bytes(b""),
    "random": _bytes(RANDOM),
    "text": _bytes(b"not a checkpoint\n"),
    "zip-of-text": lambda path, marker: zipfile.ZipFile(path, "w").writestr("data.pkl", "hello"),
    "pickle-payload": lambda path, marker: path.write_bytes(pickle.dumps(_Payload(marker))),
    "torch-payload": _torch_file(_Payload),
    "tensor": _torch_file(torch.zeros(3)),
    "list": _torch_file([1, 2, 3]),
    "no-version": _torch_file({"config": {}, "state_dicts": {}}),
    "version-99": None,  # filled below: they need the world's checkpoint
}


def _checkpoint_makers(world: Path) -> dict[str, Callable[[Path, Path], None]]:
    makers = {k: v for k, v in CHECKPOINTS.items() if v is not None}
    makers.update({
        "version-99": _checkpoint_dict(world, _set("format_version", 99)),
        "config-bad-value": _checkpoint_dict(world, _set("config.model.image_size", 0)),
        "config-unknown-key": _checkpoint_dict(world, _set("config.model.colour", 1)),
        "config-not-a-mapping": _checkpoint_dict(world, _set("config", [1, 2])),
        "kind-potato": _checkpoint_dict(world, _set("meta.kind", "potato")),
        "meta-not-a-mapping": _checkpoint_dict(world, _set("meta", "text")),
        "step-text": _checkpoint_dict(world, _set("step", "many")),
        "weights-missing": _checkpoint_dict(world, _drop_weights),
        "weights-not-a-mapping": _checkpoint_dict(world, _set("state_dicts", [1, 2])),
        "other-shapes": _checkpoint_dict(world, _fewer_keypoints),
        "crop-text": _checkpoint_dict(world, _set("meta.fixed_crop", "everywhere")),
        "crop-nan": _checkpoint_dict(world, _set("meta.fixed_crop", [float("nan"), 0.0, 10.0, 10.0])),
    })
    return makers


CHECKPOINT_COMMANDS = {
    "track": ["track", "{video}", "-m", "{bad}", "-o", "{out}/t.npz"],
    "export": ["export", "{bad}", "--onnx", "{out}/m.onnx"],
    "distill": ["distill", "{video}", "-t", "{bad}", "-o", "{out}/s.pt", "--steps", "1"],
    "animate": ["animate", "{video}", "{video}", "-m", "{bad}", "-o", "{out}/a.mp4"],
    "reconstruction": ["evaluate", "reconstruction", "{video}", "-m", "{bad}", "-o", "{out}/r.json"],
    "keypoints": ["evaluate", "keypoints", "{dlc}", "--video", "{video}", "-m", "{bad}", "--json", "{out}/e.json"],
}
CHECKPOINT_KINDS = sorted([*CHECKPOINTS, "config-bad-value", "config-unknown-key", "config-not-a-mapping",
                           "kind-potato", "meta-not-a-mapping", "step-text", "weights-missing",
                           "weights-not-a-mapping", "other-shapes", "crop-text", "crop-nan"])


def _run_bad(world, args: list[str], bad: Path, tmp_path: Path, capsys, monkeypatch, *fragments: str) -> str:
    marker = tmp_path / "marker"
    before = hashlib.sha256(bad.read_bytes()).hexdigest() if bad.is_file() else None
    line = assert_refused(world, [a.replace("{bad}", str(bad)) for a in args], tmp_path / "out", capsys, monkeypatch,
                          *fragments)
    assert not marker.exists(), "a file ran code"
    if before is not None:
        assert hashlib.sha256(bad.read_bytes()).hexdigest() == before
    return line


# Every kind of file runs through track; the other commands get a sample of them.
CHECKPOINT_CASES = [(command, kind) for command in sorted(CHECKPOINT_COMMANDS) for kind in CHECKPOINT_KINDS
                    if command == "track" or kind in ("random", "torch-payload", "other-shapes", "kind-potato",
                                                      "weights-missing")]


@pytest.mark.parametrize(("command", "kind"), CHECKPOINT_CASES)
def test_hostile_checkpoint(command: str, kind: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    bad = tmp_path / "bad.pt"
    _checkpoint_makers(hostile_world.folder)[kind](bad, tmp_path / "marker")
    _run_bad(hostile_world, CHECKPOINT_COMMANDS[command], bad, tmp_path, capsys, monkeypatch, str(bad))


def _onnx_without_metadata(path: Path, marker: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["images"], ["keypoints"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, [1, 3, 8, 8])])
    model = helper.make_model(graph)
    onnx.save(model, str(path))


def _onnx_with(props: dict[str, str], inputs: bool = True) -> Callable[[Path, Path], None]:
    def make(path: Path, marker: Path) -> None:
        onnx = pytest.importorskip("onnx")
        from onnx import TensorProto, helper

        node = helper.make_node("Identity", ["images"], ["keypoints"])
        value = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])]
        graph = helper.make_graph([node] if inputs else [], "g", value if inputs else [],
                                  [helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, [1, 3, 8, 8])])
        model = helper.make_model(graph)
        for key, text in props.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, text
        onnx.save(model, str(path))
    return make


GOOD_META = {"fomm_kp.kind": "student", "fomm_kp.config": "{}", "fomm_kp.meta": "{}"}
ONNX_FILES = {
    "empty": _bytes(b""),
    "random": _bytes(RANDOM),
    "text": _bytes(b"ir_version: 8\n"),
    "no-metadata": _onnx_without_metadata,
    "config-not-json": _onnx_with({**GOOD_META, "fomm_kp.config": "{not json"}),
    "config-list": _onnx_with({**GOOD_META, "fomm_kp.config": "[1, 2]"}),
    "config-bad-value": _onnx_with({**GOOD_META, "fomm_kp.config": '{"model": {"image_size": 0}}'}),
    "meta-not-json": _onnx_with({**GOOD_META, "fomm_kp.meta": "<xml/>"}),
    "meta-list": _onnx_with({**GOOD_META, "fomm_kp.meta": "[]"}),
    "kind-potato": _onnx_with({**GOOD_META, "fomm_kp.kind": "potato"}),
    "no-inputs": _onnx_with(GOOD_META, inputs=False),
    "not-our-graph": _onnx_with(GOOD_META),
}


ONNX_COMMANDS = {
    "track": ["track", "{video}", "-m", "{bad}", "-o", "{out}/t.npz"],
    "keypoints": ["evaluate", "keypoints", "{dlc}", "--video", "{video}", "-m", "{bad}", "--json", "{out}/e.json"],
}


@pytest.mark.parametrize("command", sorted(ONNX_COMMANDS))
@pytest.mark.parametrize("kind", sorted(ONNX_FILES))
def test_hostile_onnx_model(kind: str, command: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    bad = tmp_path / "bad.onnx"
    ONNX_FILES[kind](bad, tmp_path / "marker")
    _run_bad(hostile_world, ONNX_COMMANDS[command], bad, tmp_path, capsys, monkeypatch, str(bad))


def _image_folder(sizes: list[tuple[int, int]], garbage: bool = False) -> Callable[[Path, Path], None]:
    def make(path: Path, marker: Path) -> None:
        from PIL import Image

        path.mkdir()
        rng = np.random.default_rng(0)
        for i, (w, h) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path / f"img{i:03d}.png")
        if garbage:
            (path / "img999.png").write_bytes(b"not a png")
    return make


TRUNCATED: list[bytes] = []  # the world's video, read once by the first video test


def _text_folder(path: Path, marker: Path) -> None:
    path.mkdir()
    (path / "notes.txt").write_text("hello")


VIDEOS = {
    "empty": (".mp4", _bytes(b"")),
    "random": (".mp4", _bytes(RANDOM)),
    "text": (".mp4", _bytes(b"hello\n" * 100)),
    "pickle": (".avi", lambda path, marker: path.write_bytes(pickle.dumps(_Payload(marker)))),
    "zero-frames": (".avi", lambda path, marker: write_zero_frame_video(path)),
    "truncated": (".mp4", lambda path, marker: path.write_bytes(TRUNCATED[0][: len(TRUNCATED[0]) * 2 // 3])),
    "head-only": (".mp4", lambda path, marker: path.write_bytes(TRUNCATED[0][:600])),
    "png-that-is-text": (".png", _bytes(b"hello")),
    "folder-without-images": ("", _text_folder),
    "folder-mixed-sizes": ("", _image_folder([(64, 48)] * 3 + [(32, 32)] * 3)),
    "folder-garbage-image": ("", _image_folder([(64, 48)] * 3, garbage=True)),
}
VIDEO_COMMANDS = {
    "train": ["train", "{bad}", "-o", "{out}/run", "--config", "{config}", "--steps", "1"],
    "track": ["track", "{bad}", "-m", "{ckpt}", "-o", "{out}/t.npz"],
    "distill": ["distill", "{bad}", "-t", "{ckpt}", "-o", "{out}/s.pt", "--steps", "1"],
    "animate": ["animate", "{video}", "{bad}", "-m", "{ckpt}", "-o", "{out}/a.mp4"],
    "reconstruction": ["evaluate", "reconstruction", "{bad}", "-m", "{ckpt}"],
    "classify": ["classify", "{bad}", "--classifier", "{clf}", "--checkpoint", "{ckpt}"],
}


# classify tells videos from tracks files by suffix: it gets the files named as videos.
VIDEO_CASES = [(command, kind) for command in sorted(VIDEO_COMMANDS) for kind in sorted(VIDEOS)
               if command != "classify" or VIDEOS[kind][0] in (".mp4", ".avi")]


@pytest.mark.parametrize(("command", "kind"), VIDEO_CASES)
def test_hostile_video(command: str, kind: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    suffix, make = VIDEOS[kind]
    TRUNCATED[:] = TRUNCATED or [(hostile_world.folder / "video.mp4").read_bytes()]
    bad = tmp_path / f"bad{suffix}"
    make(bad, tmp_path / "marker")
    _run_bad(hostile_world, VIDEO_COMMANDS[command], bad, tmp_path, capsys, monkeypatch)


def _npz(**arrays) -> Callable[[Path, Path], None]:
    def make(path: Path, marker: Path) -> None:
        values = {k: (v(marker) if callable(v) else v) for k, v in arrays.items()}
        with open(path, "wb") as handle:
            np.savez(handle, **values)
    return make


def _tracks_npz(**changes) -> Callable[[Path, Path], None]:
    t = 60
    fields = {"keypoints": np.zeros((t, 1, 3, 2), np.float32), "scores": np.ones((t, 1, 3), np.float32),
              "frame_indices": np.arange(t), "fps": np.float64(30.0), "video": np.str_("v.mp4"),
              "keypoint_names": np.array(["a", "b", "c"]), "subject_names": np.array(["s"])}
    fields.update(changes)
    return _npz(**{k: v for k, v in fields.items() if v is not None})


def _objects(marker: Path) -> np.ndarray:
    return np.array([_Payload(marker), 1], dtype=object)


TRACKS = {
    "npz-empty": (".npz", _bytes(b"")),
    "npz-random": (".npz", _bytes(RANDOM)),
    "npz-no-arrays": (".npz", _npz()),
    "npz-pickled-keypoints": (".npz", _tracks_npz(keypoints=_objects)),
    "npz-pickled-names": (".npz", _tracks_npz(keypoint_names=_objects)),
    "npz-missing-scores": (".npz", _tracks_npz(scores=None)),
    "npz-keypoints-3d": (".npz", _tracks_npz(keypoints=np.zeros((60, 3, 2), np.float32))),
    "npz-keypoints-text": (".npz", _tracks_npz(keypoints=np.full((60, 1, 3, 2), "x"))),
    "npz-fps-nan": (".npz", _tracks_npz(fps=np.float64("nan"))),
    "npz-fps-zero": (".npz", _tracks_npz(fps=np.float64(0))),
    "npz-fps-negative": (".npz", _tracks_npz(fps=np.float64(-30))),
    "npz-fps-text": (".npz", _tracks_npz(fps=np.str_("fast"))),
    "npz-no-frames": (".npz", _tracks_npz(keypoints=np.zeros((0, 1, 3, 2), np.float32),
                                          scores=np.zeros((0, 1, 3), np.float32), frame_indices=np.arange(0))),
    "npz-frames-repeated": (".npz", _tracks_npz(frame_indices=np.zeros(60, int))),
    "npz-frames-negative": (".npz", _tracks_npz(frame_indices=np.arange(60) - 100)),
    "npz-names-wrong-count": (".npz", _tracks_npz(keypoint_names=np.array(["a"]))),
    "npz-all-nan": (".npz", _tracks_npz(keypoints=np.full((60, 1, 3, 2), np.nan, np.float32))),
    "npz-keypoints-inf": (".npz", _tracks_npz(keypoints=np.full((60, 1, 3, 2), np.inf, np.float32))),
    "csv-text-in-numbers": (".csv", _bytes(b"scorer,s,s,s\nbodyparts,a,a,a\ncoords,x,y,likelihood\n0,1,two,0.9\n")),
    "csv-missing-y": (".csv", _bytes(b"scorer,s,s\nbodyparts,a,a\ncoords,x,likelihood\n0,1,0.9\n1,2,0.9\n")),
    "csv-short-rows": (".csv", _bytes(b"scorer,s,s,s\nbodyparts,a,a,a\ncoords,x,y,likelihood\n0,1,2,0.9\n1,1\n")),
    "csv-long-rows": (".csv", _bytes(b"scorer,s,s,s\nbodyparts,a,a,a\ncoords,x,y,likelihood\n0,1,2,0.9,7,8\n")),
    "csv-header-only": (".csv", _bytes(b"scorer,s,s,s\nbodyparts,a,a,a\ncoords,x,y,likelihood\n")),
    "csv-no-header": (".csv", _bytes(b"0,1,2,0.9\n1,1,2,0.9\n")),
    "csv-unknown-coordinate": (".csv", _bytes(b"scorer,s,s,s\nbodyparts,a,a,a\ncoords,x,y,z\n0,1,2,3\n")),
    "csv-repeated-frames": (".csv", _bytes(b"scorer,s,s,s\nbodyparts,a,a,a\ncoords,x,y,likelihood\n0,1,2,0.9\n0,1,2,0.9\n")),
    "csv-nan-text": (".csv", _bytes(b"scorer,s,s,s\nbodyparts,a,a,a\ncoords,x,y,likelihood\n0,nan,inf,0.9\n")),
    "csv-binary": (".csv", _bytes(RANDOM)),
    "csv-empty": (".csv", _bytes(b"")),
    "h5-random": (".h5", _bytes(RANDOM)),
    "h5-empty": (".h5", _bytes(b"")),
    "slp-random": (".slp", _bytes(RANDOM)),
    "nwb-random": (".nwb", _bytes(RANDOM)),
    "unknown-suffix": (".txt", _bytes(b"1,2,3\n")),
    "folder": (".npz", lambda path, marker: path.mkdir()),
}
TRACKS_COMMANDS = {
    "features": ["features", "{bad}", "-o", "{out}/f.npz"],
    "fit": ["fit", "--clip", "a={bad}", "--clip", "b={npz}", "-o", "{out}/c.npz"],
    "classify": ["classify", "{bad}", "--classifier", "{clf}", "--per-frame", "{out}/p.csv"],
    "score": ["score", "{bad}", "--classifier", "{clf}", "-o", "{out}/report"],
    "motifs": ["motifs", "{bad}", "{npz}", "-o", "{out}/motifs", "--no-clips"],
}


# Every kind runs through features and classify; the other commands get a sample.
TRACKS_CASES = [(command, kind) for command in sorted(TRACKS_COMMANDS) for kind in sorted(TRACKS)
                if command in ("features", "classify") or kind.startswith(("npz-pickled", "npz-all-nan", "csv-text",
                                                                             "csv-short", "npz-random", "csv-missing"))]


@pytest.mark.parametrize(("command", "kind"), TRACKS_CASES)
def test_hostile_tracks(command: str, kind: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    suffix, make = TRACKS[kind]
    bad = tmp_path / f"bad{suffix}"
    make(bad, tmp_path / "marker")
    _run_bad(hostile_world, TRACKS_COMMANDS[command], bad, tmp_path, capsys, monkeypatch)


def _classifier_with(change: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def make(path: Path, marker: Path) -> None:
        import json

        with np.load(CLASSIFIER_SOURCE[0], allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays["meta"]))
        change(meta)
        arrays["meta"] = np.str_(json.dumps(meta))
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    return make


CLASSIFIER_SOURCE: list[Path] = []
CLASSIFIERS = {
    "empty": _bytes(b""),
    "random": _bytes(RANDOM),
    "pickled-meta": _npz(meta=_objects),
    "tracks-file": _tracks_npz(),
    "meta-not-json": _npz(meta=np.str_("{oops")),
    "meta-list": _npz(meta=np.str_("[]")),
    "kind-potato": _classifier_with(lambda meta: meta.update(kind="potato")),
    "classes-number": _classifier_with(lambda meta: meta.update(classes=3)),
    "arrays-missing": _classifier_with(lambda meta: meta.update(arrays=["nothing"])),
    "feature-config-bad": _classifier_with(lambda meta: meta.update(feature_config={"stride_seconds": -1})),
    "feature-names-short": _classifier_with(lambda meta: meta.update(feature_names=["x"])),
}


@pytest.mark.parametrize("kind", sorted(CLASSIFIERS))
def test_hostile_classifier(kind: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    CLASSIFIER_SOURCE[:] = [hostile_world.folder / "classifier.npz"]
    bad = tmp_path / "bad.npz"
    CLASSIFIERS[kind](bad, tmp_path / "marker")
    _run_bad(hostile_world, ["classify", "{npz}", "--classifier", "{bad}", "--per-frame", "{out}/p.csv"], bad,
             tmp_path, capsys, monkeypatch)


LABELS = {
    "missing-columns": b"video,label\nvideo,a\n",
    "text-frames": b"video,start_frame,end_frame,label\nvideo,zero,10,a\n",
    "end-before-start": b"video,start_frame,end_frame,label\nvideo,10,5,a\n",
    "negative-start": b"video,start_frame,end_frame,label\nvideo,-5,5,a\n",
    "empty-label": b"video,start_frame,end_frame,label\nvideo,0,5,\n",
    "header-only": b"video,start_frame,end_frame,label\n",
    "empty": b"",
    "binary": RANDOM,
    "other-video": b"video,start_frame,end_frame,label\nelsewhere,0,50,a\nelsewhere,60,100,b\n",
    "one-label": b"video,start_frame,end_frame,label\nvideo,0,179,a\n",
    "past-the-end": b"video,start_frame,end_frame,label\nvideo,5000,6000,a\nvideo,7000,8000,b\n",
}


@pytest.mark.parametrize("kind", sorted(LABELS))
def test_hostile_labels(kind: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_bytes(LABELS[kind])
    _run_bad(hostile_world, ["fit", "{npz}", "--labels", "{bad}", "-o", "{out}/c.npz"], bad, tmp_path, capsys,
             monkeypatch)


GROUPS = {
    "missing-columns": b"name\nvideo\n",
    "binary": RANDOM,
    "empty": b"",
    "unknown-video": b"video,group\nelsewhere,a\n",
}


@pytest.mark.parametrize("kind", sorted(GROUPS))
def test_hostile_groups_leave_no_report(kind: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    bad = tmp_path / "groups.csv"
    bad.write_bytes(GROUPS[kind])
    _run_bad(hostile_world, ["score", "{npz}", "--classifier", "{clf}", "--groups", "{bad}", "-o", "{out}/report"],
             bad, tmp_path, capsys, monkeypatch)


KEYPOINT_LABELS = {
    "text-in-numbers": b"scorer,s,s\nbodyparts,a,a\ncoords,x,y\nlabeled-data/v/img0.png,1,two\n",
    "missing-y": b"scorer,s\nbodyparts,a\ncoords,x\nlabeled-data/v/img0.png,1\n",
    "binary": RANDOM,
    "header-only": b"scorer,s,s\nbodyparts,a,a\ncoords,x,y\n",
}


@pytest.mark.parametrize("kind", sorted(KEYPOINT_LABELS))
def test_hostile_keypoint_labels(kind: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    bad = tmp_path / "CollectedData.csv"
    bad.write_bytes(KEYPOINT_LABELS[kind])
    _run_bad(hostile_world, ["evaluate", "keypoints", "{bad}", "--tracks", "{npz}", "--json", "{out}/e.json"], bad,
             tmp_path, capsys, monkeypatch)
