"""Strict config loading: built-ins, unknown keys and wrong types, plain-data round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from fomm_kp.config import (BUILTIN_CONFIGS, Config, builtin_config, from_dict,
                            load_config, to_dict)
from fomm_kp.errors import FommError


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", BUILTIN_CONFIGS)
def test_builtins_load(name: str) -> None:
    config = builtin_config(name)
    assert isinstance(config, Config)
    assert load_config(name) == config
    # Every hourglass must be able to halve its input num_blocks times.
    model = config.model
    assert model.detector.input_size % 2**model.detector.num_blocks == 0
    assert model.dense_motion.input_size % 2**model.dense_motion.num_blocks == 0
    assert model.image_size % 2**model.generator.num_down_blocks == 0


def test_builtins_are_what_their_files_say() -> None:
    assert builtin_config("gpu").model.image_size == 256
    assert builtin_config("tiny").model.detector.num_keypoints == 4
    assert builtin_config("tiny").loss.scales == (1.0, 0.5)
    assert load_config(None) == builtin_config("cpu")


def test_unknown_builtin_name() -> None:
    with pytest.raises(FommError, match="unknown built-in config 'huge'"):
        builtin_config("huge")


def test_partial_file_keeps_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "model:\n  detector:\n    num_keypoints: 7\ntrain:\n  steps: 12\n")
    config = load_config(path)
    assert config.model.detector.num_keypoints == 7
    assert config.train.steps == 12
    assert config.model.detector.input_size == Config().model.detector.input_size
    assert config.loss == Config().loss


def test_empty_file_is_the_default(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path / "empty.yaml", "")) == Config()


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.yaml", "model:\n  detector:\n    num_keypoint: 7\n")
    with pytest.raises(FommError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "num_keypoint" in message
    assert "model.detector" in message
    assert "\n" not in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.yaml", "trian:\n  steps: 3\n")
    with pytest.raises(FommError, match="unknown key 'trian'"):
        load_config(path)


@pytest.mark.parametrize(
    "text, key",
    [
        ("train:\n  steps: many\n", "train.steps"),
        ("train:\n  steps: 2.5\n", "train.steps"),
        ("train:\n  steps: true\n", "train.steps"),
        ("train:\n  flip: 1\n", "train.flip"),
        ("train:\n  learning_rate: fast\n", "train.learning_rate"),
        ("loss:\n  scales: 1.0\n", "loss.scales"),
        ("loss:\n  scales: [1.0, half]\n", "loss.scales[1]"),
        ("loss:\n  perceptual_weights: 3\n", "loss.perceptual_weights"),
        ("data:\n  localize: maybe\n", "data.localize"),
        ("model: 5\n", "model"),
    ],
)
def test_wrong_type_names_key_and_file(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path / "bad.yaml", text)
    with pytest.raises(FommError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert key in message
    assert "\n" not in message


def test_int_accepted_for_float() -> None:
    config = from_dict({"train": {"learning_rate": 1}})
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(FommError, match="top level must be a mapping"):
        load_config(path)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path / "broken.yaml", "model: {detector: [\n")
    with pytest.raises(FommError) as info:
        load_config(path)
    assert "not valid YAML" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FommError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", BUILTIN_CONFIGS)
def test_round_trip_through_plain_data_and_yaml(name: str) -> None:
    config = builtin_config(name)
    data = to_dict(config)
    assert from_dict(data) == config
    assert from_dict(yaml.safe_load(yaml.safe_dump(data))) == config


def test_round_trip_of_changed_values() -> None:
    base = Config()
    changed = dataclasses.replace(
        base,
        loss=dataclasses.replace(base.loss, scales=(1.0, 0.25), motion_weight=0.0),
        data=dataclasses.replace(base.data, localize="off"),
        model=dataclasses.replace(
            base.model, detector=dataclasses.replace(base.model.detector, estimate_jacobian=False)
        ),
    )
    assert from_dict(to_dict(changed)) == changed
    assert from_dict(to_dict(changed)) != base


def test_configs_are_frozen() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.steps = 3  # type: ignore[misc]
