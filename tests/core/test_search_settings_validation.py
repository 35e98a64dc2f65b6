"""Validation of the selection, explore and rejuvenation settings: every bad value is refused at
study creation with a message that starts with the path of the field, and the bounds are accepted."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from pbt_service.core.errors import InvalidArgumentError
from pbt_service.core.search_space import validate_config
from pbt_service.core.types import (
    AlgorithmConfig,
    Condition,
    ExploreConfig,
    ExploreStrategy,
    Objective,
    OpponentStrategy,
    ParameterSpec,
    ParameterType,
    Scale,
    SelectionConfig,
    SelectionScore,
    SelectionStrategy,
    StudyConfig,
)

LR = ParameterSpec("lr", ParameterType.FLOAT, low=1e-4, high=1.0, scale=Scale.LOG)
WIDTH = ParameterSpec("width", ParameterType.INTEGER, low=1, high=8)
OPT = ParameterSpec("opt", ParameterType.CATEGORICAL, values=("sgd", "adam"))
DROP = ParameterSpec("drop", ParameterType.DISCRETE, values=(0.0, 0.5))
SELECTION = "config.algorithm.selection"
EXPLORE = "config.algorithm.explore"


DEFAULT_SELECTION, DEFAULT_EXPLORE = SelectionConfig(), ExploreConfig()


def config(
    selection: SelectionConfig = DEFAULT_SELECTION,
    explore: ExploreConfig = DEFAULT_EXPLORE,
    rejuvenate: int = 0,
    parameters: tuple[ParameterSpec, ...] = (LR, OPT),
) -> StudyConfig:
    algorithm = AlgorithmConfig(selection=selection, explore=explore, rejuvenate_after_generations=rejuvenate)
    return StudyConfig(parameters, (Objective("acc"),), algorithm=algorithm)


def rejected(cfg: StudyConfig) -> str:
    with pytest.raises(InvalidArgumentError) as error:
        validate_config(cfg)
    return str(error.value)


BAD: list[tuple[str, StudyConfig, str]] = [
    *[
        (f"truncation_quantile={q}", config(SelectionConfig(truncation_quantile=q)), f"{SELECTION}.truncation_quantile")
        for q in (0.0, -0.25, 0.51, 1.0, math.nan, math.inf)
    ],
    *[(f"score_window={w}", config(SelectionConfig(score_window=w)), f"{SELECTION}.score_window") for w in (0, -1, 17)],
    *[
        (f"ready_generations={g}", config(SelectionConfig(ready_generations=g)), f"{SELECTION}.ready_generations")
        for g in (0, -3, 10_001)
    ],
    ("burn_in_steps=-1", config(SelectionConfig(burn_in_steps=-1)), f"{SELECTION}.burn_in_steps"),
    ("ready_steps=-1", config(SelectionConfig(ready_steps=-1)), f"{SELECTION}.ready_steps"),
    ("rejuvenate=-1", config(rejuvenate=-1), "config.algorithm.rejuvenate_after_generations"),
    *[
        (
            f"resample_probability={p}",
            config(explore=ExploreConfig(ExploreStrategy.RESAMPLE, resample_probability=p)),
            f"{EXPLORE}.resample_probability",
        )
        for p in (0.0, -0.5, 1.01, math.nan)
    ],
    *[
        (
            f"pb2_max_points={n}",
            config(explore=ExploreConfig(ExploreStrategy.PB2, pb2_max_points=n)),
            f"{EXPLORE}.pb2_max_points",
        )
        for n in (0, 2, 257)
    ],  # fmt: skip
    (
        "pb2 with only categorical and discrete parameters",
        config(explore=ExploreConfig(ExploreStrategy.PB2), parameters=(OPT, DROP)),
        f"{EXPLORE}.strategy",
    ),
    (
        "pb2 with only frozen numbers",
        config(explore=ExploreConfig(ExploreStrategy.PB2), parameters=(replace(LR, frozen=True), OPT)),
        f"{EXPLORE}.strategy",
    ),
]


@pytest.mark.parametrize(("case", "cfg", "field"), BAD, ids=[case for case, _, _ in BAD])
def test_a_bad_search_setting_is_rejected_naming_its_field(case: str, cfg: StudyConfig, field: str) -> None:
    message = rejected(cfg)
    assert message.startswith(f"{field}: "), message
    assert "got" in message or "PB2" in message, message


def test_the_message_quotes_the_bad_value() -> None:
    assert rejected(config(SelectionConfig(truncation_quantile=0.75))).endswith("got 0.75")
    assert rejected(config(SelectionConfig(score_window=17))).endswith("got 17")
    assert rejected(config(SelectionConfig(ready_steps=-5))).endswith("got -5")


GOOD: list[tuple[str, StudyConfig]] = [
    ("defaults", config()),
    ("quantile at the top bound", config(SelectionConfig(truncation_quantile=0.5))),
    ("tiny quantile", config(SelectionConfig(truncation_quantile=1e-9))),
    ("score window 1", config(SelectionConfig(score_window=1))),
    ("score window 16", config(SelectionConfig(score_window=16))),
    ("ready generations 10000", config(SelectionConfig(ready_generations=10_000))),
    ("zero steps", config(SelectionConfig(burn_in_steps=0, ready_steps=0))),
    ("huge steps", config(SelectionConfig(burn_in_steps=2**62, ready_steps=2**62))),
    ("resample probability 1", config(explore=ExploreConfig(ExploreStrategy.RESAMPLE, resample_probability=1.0))),
    ("pb2 with 3 points", config(explore=ExploreConfig(ExploreStrategy.PB2, pb2_max_points=3))),
    ("pb2 with 256 points", config(explore=ExploreConfig(ExploreStrategy.PB2, pb2_max_points=256))),
    ("pb2 on an integer", config(explore=ExploreConfig(ExploreStrategy.PB2), parameters=(WIDTH, OPT))),
    (
        "pb2 on a conditional float",
        config(
            explore=ExploreConfig(ExploreStrategy.PB2),
            parameters=(OPT, replace(LR, condition=Condition("opt", ("sgd",)))),
        ),
    ),
    (
        "every setting off its default",
        config(
            SelectionConfig(
                SelectionStrategy.TRUNCATION, 0.4, OpponentStrategy.ANY, SelectionScore.IMPROVEMENT, 5, 10, 20, 2
            ),
            ExploreConfig(ExploreStrategy.PB2, 0.5, 32),
            rejuvenate=4,
        ),
    ),
]


@pytest.mark.parametrize(("case", "cfg"), GOOD, ids=[case for case, _ in GOOD])
def test_settings_within_bounds_are_accepted(case: str, cfg: StudyConfig) -> None:
    validate_config(cfg)


def test_improvement_needs_a_window_of_two() -> None:
    """With one final in the window there is no rate to compare: refused, not silently LAST."""
    message = rejected(config(SelectionConfig(score=SelectionScore.IMPROVEMENT, score_window=1)))
    assert message.startswith("config.algorithm.selection.score_window:") and "at least 2" in message
    validate_config(config(SelectionConfig(score=SelectionScore.IMPROVEMENT, score_window=2)))
    validate_config(config(SelectionConfig(score=SelectionScore.SMOOTHED, score_window=1)))
