"""Strict config loading: built-ins, unknown keys and wrong types, plain-data round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from fomm_kp.config import (
    BUILTIN_CONFIGS,
    Config,
    DataConfig,
    DetectorConfig,
    LocalizeConfig,
    TrainConfig,
    builtin_config,
    from_dict,
    load_config,
    to_dict,
)
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


def test_animation_configs() -> None:
    gpu, animation_gpu, cpu = builtin_config("gpu"), builtin_config("animation-gpu"), builtin_config("animation-cpu")
    # The GPU animation config has the paper's shapes, those of the gpu config; only the blend differs.
    assert dataclasses.replace(animation_gpu.model.generator, blend=False) == gpu.model.generator
    assert animation_gpu.model.detector == gpu.model.detector and animation_gpu.model.dense_motion == gpu.model.dense_motion
    assert animation_gpu.model.image_size == 256 and animation_gpu.model.generator.blend
    assert cpu.model.image_size == 128 and cpu.model.generator.blend
    assert cpu.model.detector.input_size == cpu.model.dense_motion.input_size == 64
    assert cpu.train.minutes == 30


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


# --------------------------------------------------------------------------------------------
# Every value checked on construction (YAML, checkpoints and Python alike), one line each.


def test_every_builtin_named_in_the_readme_loads() -> None:
    assert set(BUILTIN_CONFIGS) == {"cpu", "cpu128", "gpu", "gpu_default", "tiny", "animation-cpu", "animation-gpu"}
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in BUILTIN_CONFIGS:
        assert f"`{name}`" in readme, name
        assert load_config(name) == builtin_config(name)


def test_the_default_config_depends_on_the_device(caplog: pytest.LogCaptureFixture) -> None:
    from fomm_kp.api import default_config

    assert default_config("cpu") == Config()
    with caplog.at_level("INFO", logger="fomm_kp.api"):
        gpu = default_config("cuda")
    assert gpu == builtin_config("gpu_default") and gpu.model.image_size == 128 and gpu.train.batch_size == 32
    assert "config: gpu_default (no --config given; 128-px frames" in caplog.text


def test_empty_file_no_file_and_python_default_agree(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path / "empty.yaml", "")) == load_config(None) == Config() == from_dict({})


@pytest.mark.parametrize(
    "text, key, allowed",
    [
        ("model:\n  detector:\n    num_keypoints: 0\n", "model.detector.num_keypoints", ">= 1"),
        ("model:\n  image_size: 4\n", "model.image_size", ">= 8"),
        ("model:\n  image_size: 102\n", "model.image_size", "multiple of"),
        ("model:\n  detector:\n    input_size: 40\n", "model.detector.input_size", "multiple of"),
        ("model:\n  detector:\n    temperature: 0\n", "model.detector.temperature", "> 0"),
        ("train:\n  batch_size: 0\n", "train.batch_size", ">= 1"),
        ("train:\n  learning_rate: .nan\n", "train.learning_rate", "finite number > 0"),
        ("train:\n  learning_rate: -1.0\n", "train.learning_rate", "> 0"),
        ("train:\n  seed: -1\n", "train.seed", "[0, 4.29497e+09]"),
        ("train:\n  seed: 4294967296\n", "train.seed", "[0, 4.29497e+09]"),
        ("train:\n  minutes: -1\n", "train.minutes", ">= 0"),
        ("train:\n  min_gap: 5\n  max_gap: 2\n", "train.max_gap", "at least min_gap"),
        ("train:\n  color_jitter: 2\n", "train.color_jitter", "[0, 1]"),
        ("loss:\n  scales: []\n", "loss.scales", "at least 1"),
        ("loss:\n  scales: [1.0, 2.0]\n", "loss.scales", "(0, 1]"),
        ("loss:\n  separation: .inf\n", "loss.separation", "finite"),
        ("loss:\n  perceptual: 1.0\n", "loss.perceptual_weights", "VGG-19"),
        ("data:\n  box_margin: 0.5\n", "data.box_margin", ">= 1"),
        ("data:\n  localizer:\n    work_size: 8\n", "data.localizer.work_size", ">= 16"),
        ("data:\n  localizer:\n    min_found_fraction: 1.5\n", "data.localizer.min_found_fraction", "[0, 1]"),
        ("data:\n  localizer:\n    margin: 2.0\n", "data.localizer.margin", "data.box_margin"),
    ],
)
def test_values_out_of_range_name_key_and_range(tmp_path: Path, text: str, key: str, allowed: str) -> None:
    path = _write(tmp_path / "bad.yaml", text)
    with pytest.raises(FommError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key} must be "), message
    assert allowed in message and "\n" not in message


def test_configs_built_in_python_are_checked_too() -> None:
    with pytest.raises(FommError, match=r"^TrainConfig\.batch_size must be an integer >= 1, got 0$"):
        TrainConfig(batch_size=0)
    with pytest.raises(FommError, match=r"^DetectorConfig\.num_keypoints must be an integer >= 1, got 0$"):
        DetectorConfig(num_keypoints=0)
    with pytest.raises(FommError, match="TrainConfig.learning_rate"):
        dataclasses.replace(Config().train, learning_rate=float("nan"))
    with pytest.raises(FommError, match="DataConfig.localize must be one of 'auto', 'on', 'off'"):
        DataConfig(localize="maybe")
    with pytest.raises(FommError, match="LocalizeConfig.size_quantile"):
        LocalizeConfig(size_quantile=0.0)


def test_the_localizer_is_configured_from_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "data:\n  box_margin: 1.25\n  localizer:\n    threshold_sigmas: 4\n    min_side: 24\n")
    settings = load_config(path).data.localize_config()
    assert (settings.threshold_sigmas, settings.min_side, settings.margin) == (4.0, 24, 1.25)
    assert settings.work_size == LocalizeConfig().work_size


def test_checkpoint_configs_of_earlier_versions_still_load() -> None:
    """Configs stored before the localizer section existed (no ``data.localizer``) load unchanged."""
    data = to_dict(builtin_config("tiny"))
    del data["data"]["localizer"]
    assert from_dict(data) == builtin_config("tiny")


def test_the_documented_configs_load_and_keypoints10_is_the_old_default() -> None:
    """docs/configs hold the variants the accuracy docs name; keypoints10.yaml must stay today's
    `cpu` config with 10 keypoints, or the figures made before 2026-12-01 could not be reproduced."""
    folder = Path(__file__).resolve().parents[1] / "docs" / "configs"
    configs = {path.name: load_config(path) for path in sorted(folder.glob("*.yaml"))}
    assert "keypoints10.yaml" in configs and "keypoints32.yaml" in configs
    default = builtin_config("cpu")
    old = configs["keypoints10.yaml"]
    assert old.model.detector.num_keypoints == 10 and default.model.detector.num_keypoints == 32
    assert dataclasses.replace(old.model, detector=default.model.detector) == default.model
    assert dataclasses.replace(old, model=default.model) == default
    assert configs["keypoints32.yaml"] == default


def test_the_documented_levers_change_only_what_they_name() -> None:
    """dense64.yaml and detector128_k32.yaml are today's `cpu` config with one network changed, so
    that their rows in docs/keypoint_accuracy.md compare one lever against the default."""
    folder = Path(__file__).resolve().parents[1] / "docs" / "configs"
    default = builtin_config("cpu")
    dense = load_config(folder / "dense64.yaml")
    assert dense.model.dense_motion.input_size == 64 and default.model.dense_motion.input_size == 32
    assert dataclasses.replace(dense.model, dense_motion=default.model.dense_motion) == default.model
    assert dataclasses.replace(dense, model=default.model) == default
    detector = load_config(folder / "detector128_k32.yaml")
    assert detector.model.detector.input_size == 128 and detector.model.detector.num_keypoints == 32
    assert dataclasses.replace(detector.model, detector=default.model.detector) == default.model
    assert dataclasses.replace(detector, model=default.model) == default
