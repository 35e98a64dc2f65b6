"""StudyConfig <-> JSON for the `studies.config_json` column.

The config is read whole and never filtered on, so one JSON document is the right shape. Missing
keys fall back to the dataclass defaults so that older rows keep loading when fields are added.
"""

from __future__ import annotations

import json
from typing import Any

from pbt_service.core.types import (
    AlgorithmConfig,
    Comparison,
    Condition,
    Goal,
    MedianStopping,
    Objective,
    ParameterSpec,
    ParameterType,
    ParamValue,
    Scale,
    StudyConfig,
)


def config_to_json(config: StudyConfig) -> str:
    """Serializes a config; the output is stable (sorted keys) so equal configs give equal text."""
    algorithm = config.algorithm
    document = {
        "parameters": [_parameter_to_dict(p) for p in config.parameters],
        "objectives": [{"metric": o.metric, "goal": o.goal.value} for o in config.objectives],
        "comparison": config.comparison.value,
        "algorithm": {
            "population_size": algorithm.population_size,
            "opponent_generations": algorithm.opponent_generations,
            "perturbation_factors": list(algorithm.perturbation_factors),
            "max_generations": algorithm.max_generations,
            "max_trials": algorithm.max_trials,
            "steps_per_trial": algorithm.steps_per_trial,
            "seed": algorithm.seed,
            "median_stopping": {
                "enabled": algorithm.median_stopping.enabled,
                "min_completed_trials": algorithm.median_stopping.min_completed_trials,
                "min_measurements": algorithm.median_stopping.min_measurements,
            },
        },
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def config_from_json(text: str) -> StudyConfig:
    """Parses what `config_to_json` wrote. Raises ValueError on malformed text."""
    try:
        document = json.loads(text)
        algorithm = document.get("algorithm", {})
        stopping = algorithm.get("median_stopping", {})
        defaults = AlgorithmConfig()
        return StudyConfig(
            parameters=tuple(_parameter_from_dict(p) for p in document.get("parameters", [])),
            objectives=tuple(
                Objective(metric=o["metric"], goal=Goal(o.get("goal", Goal.MAXIMIZE.value)))
                for o in document.get("objectives", [])
            ),
            comparison=Comparison(document.get("comparison", Comparison.LEXICOGRAPHIC.value)),
            algorithm=AlgorithmConfig(
                population_size=algorithm.get("population_size", defaults.population_size),
                opponent_generations=algorithm.get("opponent_generations", defaults.opponent_generations),
                perturbation_factors=tuple(
                    algorithm.get("perturbation_factors", defaults.perturbation_factors)
                ),
                max_generations=algorithm.get("max_generations", defaults.max_generations),
                max_trials=algorithm.get("max_trials", defaults.max_trials),
                steps_per_trial=algorithm.get("steps_per_trial", defaults.steps_per_trial),
                seed=algorithm.get("seed", defaults.seed),
                median_stopping=MedianStopping(
                    enabled=stopping.get("enabled", False),
                    min_completed_trials=stopping.get(
                        "min_completed_trials", MedianStopping().min_completed_trials
                    ),
                    min_measurements=stopping.get("min_measurements", MedianStopping().min_measurements),
                ),
            ),
        )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise ValueError(f"malformed study config JSON: {e}") from e


def _parameter_to_dict(spec: ParameterSpec) -> dict[str, Any]:
    condition = (
        None
        if spec.condition is None
        else {"parent": spec.condition.parent, "values": list(spec.condition.values)}
    )
    return {
        "name": spec.name,
        "type": spec.type.value,
        "low": spec.low,
        "high": spec.high,
        "scale": spec.scale.value,
        "values": list(spec.values),
        "frozen": spec.frozen,
        "condition": condition,
    }


def _parameter_from_dict(d: dict[str, Any]) -> ParameterSpec:
    condition = d.get("condition")
    return ParameterSpec(
        name=d["name"],
        type=ParameterType(d["type"]),
        low=d.get("low", 0.0),
        high=d.get("high", 0.0),
        scale=Scale(d.get("scale", Scale.LINEAR.value)),
        values=_values(d.get("values", [])),
        frozen=d.get("frozen", False),
        condition=None
        if condition is None
        else Condition(parent=condition["parent"], values=_values(condition["values"])),
    )


def _values(raw: list[Any]) -> tuple[ParamValue, ...]:
    for v in raw:
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise TypeError(f"parameter value {v!r} is not a number or a string")
    return tuple(raw)
