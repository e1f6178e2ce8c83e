"""Checkpoint files: plain data only, atomic, versioned; bad files give one clear error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from fomm_kp.checkpoint import FORMAT_VERSION, read_checkpoint, save_checkpoint
from fomm_kp.config import builtin_config, to_dict
from fomm_kp.errors import FommError
from fomm_kp.models import FOMM
from fomm_kp.runtime import Model


def _states(model: FOMM) -> dict:
    return {name: getattr(model, name).state_dict() for name in ("detector", "dense_motion", "generator", "background")}


def test_save_and_read(tmp_path: Path) -> None:
    config = builtin_config("tiny")
    model = FOMM(config.model)
    path = save_checkpoint(tmp_path / "ckpt.pt", config, _states(model), step=7, meta={"video": "v.mp4", "box_side": 3.5})
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    loaded, states, step, meta = read_checkpoint(path)
    assert loaded == config and step == 7 and meta == {"video": "v.mp4", "box_side": 3.5}
    # Plain tensors and data: loadable with weights_only=True, no code runs.
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["config"] == to_dict(config)
    restored = Model.load(path, device="cpu")
    for name, tensor in model.state_dict().items():
        assert torch.equal(restored.network.state_dict()[name], tensor), name


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(FommError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "nope.pt")
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(FommError, match="is not a fomm_kp checkpoint"):
        read_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(FommError, match="no format_version"):
        read_checkpoint(other)


class Payload:
    """Anything that would need code execution to unpickle."""

    def __reduce__(self):  # pragma: no cover - must never run
        return (print, ("code ran",))


def test_checkpoint_needing_code_execution_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format_version": FORMAT_VERSION, "config": {}, "extra": Payload()}, path)
    with pytest.raises(FommError, match="is not a fomm_kp checkpoint"):
        read_checkpoint(path)


def test_other_format_version(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    torch.save({"format_version": FORMAT_VERSION + 1, "config": {}, "state_dicts": {}}, path)
    with pytest.raises(FommError, match=f"format {FORMAT_VERSION + 1}"):
        read_checkpoint(path)


def test_bad_config_inside_checkpoint_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad_config.pt"
    torch.save({"format_version": FORMAT_VERSION, "config": {"model": {"colour": 3}}, "state_dicts": {}}, path)
    with pytest.raises(FommError) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value) and "colour" in str(info.value)


def test_weights_that_do_not_match_the_config(tmp_path: Path) -> None:
    config = builtin_config("tiny")
    other = dataclasses.replace(
        config.model, detector=dataclasses.replace(config.model.detector, num_keypoints=6)
    )
    path = save_checkpoint(tmp_path / "mismatch.pt", config, _states(FOMM(other)), step=1)
    with pytest.raises(FommError, match="weights do not match the config"):
        Model.load(path)
    incomplete = _states(FOMM(config.model))
    del incomplete["generator"]
    path = save_checkpoint(tmp_path / "incomplete.pt", config, incomplete, step=1)
    with pytest.raises(FommError, match="weights do not match the config"):
        Model.load(path)
