"""The one settings loader and value checks, on every settings dataclass of the package."""

from __future__ import annotations

import math

import pytest

from fomm_kp.behaviour.classifiers import ClassifierOptions
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.deploy.distill_config import DistillConfig
from fomm_kp.errors import FommError
from fomm_kp.evaluation.keypoints import CrossValidation
from fomm_kp.models.student import StudentConfig
from fomm_kp.settings import InvalidSetting, each, from_data, integer, number, to_data


def test_rules_describe_what_they_allow() -> None:
    assert integer(1).describe() == "an integer >= 1"
    assert number(0.0, 1.0).describe() == "a finite number in [0, 1]"
    assert number(above=0.0).describe() == "a finite number > 0"
    assert each(number(above=0.0, high=1.0)).describe() == "a list of at least 1 values, each a finite number in (0, 1]"
    assert not number(0.0).allows(math.nan) and not integer(0).allows(True) and integer(0).allows(3)


@pytest.mark.parametrize("cls", [FeatureConfig, StudentConfig, DistillConfig, ClassifierOptions, CrossValidation])
def test_every_settings_dataclass_round_trips_through_plain_data(cls) -> None:
    assert from_data(cls, to_data(cls())) == cls()
    with pytest.raises(FommError, match="unknown key 'nonsense'"):
        from_data(cls, {"nonsense": 1}, "here")


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: FeatureConfig(window_seconds=()), "FeatureConfig.window_seconds"),
        (lambda: FeatureConfig(min_score=1.5), "FeatureConfig.min_score"),
        (lambda: FeatureConfig(bands_hz=((5.0, 2.0),)), "FeatureConfig.bands_hz"),
        (lambda: FeatureConfig(heading=("head",)), "FeatureConfig.heading"),
        (lambda: StudentConfig(num_keypoints=0), "StudentConfig.num_keypoints"),
        (lambda: StudentConfig(temperature=-1.0), "StudentConfig.temperature"),
        (lambda: DistillConfig(batch_size=0), "DistillConfig.batch_size"),
        (lambda: DistillConfig(holdout_fraction=1.0), "DistillConfig.holdout_fraction"),
        (lambda: DistillConfig(seed=-3), "DistillConfig.seed"),
        (lambda: ClassifierOptions(knn_k=0), "ClassifierOptions.knn_k"),
        (lambda: ClassifierOptions(logistic_c=math.nan), "ClassifierOptions.logistic_c"),
        (lambda: CrossValidation(folds=1), "CrossValidation.folds"),
        (lambda: CrossValidation(fold_mode="sideways"), "CrossValidation.fold_mode"),
    ],
)
def test_values_out_of_range_are_one_line_naming_the_key(make, key: str) -> None:
    with pytest.raises(InvalidSetting) as info:
        make()
    message = str(info.value)
    assert message.startswith(f"{key} must be ") and "\n" not in message


def test_student_config_from_checkpoint_metadata_is_strict() -> None:
    data = to_data(StudentConfig())
    assert from_data(StudentConfig, data) == StudentConfig()
    with pytest.raises(FommError, match=r"^student config: widths\[1\]: expected an integer"):
        from_data(StudentConfig, {**data, "widths": [16, "wide", 64, 96]}, "student config")
    with pytest.raises(FommError, match=r"^student config: num_keypoints must be an integer >= 1, got 0$"):
        from_data(StudentConfig, {**data, "num_keypoints": 0}, "student config")
