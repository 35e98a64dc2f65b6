"""Domain dataclasses shared by the engine, the store, the converters and the client.

Frozen and free of protos and SQL so the evolution engine can be tested as plain code.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

ParamValue = float | int | str
"""A hyperparameter value: float for float and discrete parameters, int for integers, str for categories."""

HParams = Mapping[str, ParamValue]


class ParameterType(enum.Enum):
    FLOAT = "float"
    INTEGER = "integer"
    DISCRETE = "discrete"
    CATEGORICAL = "categorical"


class Scale(enum.Enum):
    LINEAR = "linear"
    LOG = "log"


@dataclass(frozen=True)
class Condition:
    """The owning parameter is active only when `parent` takes one of `values`."""

    parent: str
    values: tuple[ParamValue, ...]


@dataclass(frozen=True)
class ParameterSpec:
    """One hyperparameter. `low`/`high` bound FLOAT and INTEGER; `values` lists DISCRETE numbers
    (increasing) or CATEGORICAL names."""

    name: str
    type: ParameterType
    low: float = 0.0
    high: float = 0.0
    scale: Scale = Scale.LINEAR
    values: tuple[ParamValue, ...] = ()
    frozen: bool = False
    condition: Condition | None = None


class Goal(enum.Enum):
    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


@dataclass(frozen=True)
class Objective:
    metric: str
    goal: Goal = Goal.MAXIMIZE


class Comparison(enum.Enum):
    LEXICOGRAPHIC = "lexicographic"
    PARETO = "pareto"


@dataclass(frozen=True)
class MedianStopping:
    enabled: bool = False
    min_completed_trials: int = 3
    min_measurements: int = 1


class SelectionStrategy(enum.Enum):
    """Who a reproduction copies: the paper's initiator tournament, or Ray Tune's truncation."""

    TOURNAMENT = "tournament"
    TRUNCATION = "truncation"


class OpponentStrategy(enum.Enum):
    """Where opponents come from (paper section 4.8): the past k generations, the initiator's own
    generation, or every generation so far."""

    PAST = "past"
    SAME = "same"
    ANY = "any"


class SelectionScore(enum.Enum):
    """What selection compares: the last measurement (greedy), the mean over the lineage's last
    `score_window` generations, or the lineage's improvement over that window."""

    LAST = "last"
    SMOOTHED = "smoothed"
    IMPROVEMENT = "improvement"


DEFAULT_READY_GENERATIONS = 2
"""A member may copy another at most every second generation: measured better than every
generation (the paper's greedy default) on the noisy and the hard quadratic and no worse on
digits (docs/search.md, benchmarks/search_defaults.py)."""


@dataclass(frozen=True)
class SelectionConfig:
    """The exploit step. `burn_in_steps`: no member is replaced before it has trained that many
    steps; `ready_steps` / `ready_generations`: nor within that many steps / generations of its
    lineage's last exploit (Ray Tune's perturbation interval). Until then an initiator's child
    continues its line unchanged."""

    strategy: SelectionStrategy = SelectionStrategy.TOURNAMENT
    truncation_quantile: float = 0.25
    opponents: OpponentStrategy = OpponentStrategy.PAST
    score: SelectionScore = SelectionScore.LAST
    score_window: int = 3
    burn_in_steps: int = 0
    ready_steps: int = 0
    ready_generations: int = DEFAULT_READY_GENERATIONS


class ExploreStrategy(enum.Enum):
    """How a child's hyperparameters are derived from its parent's (the explore step)."""

    PERTURB = "perturb"
    RESAMPLE = "resample"
    PB2 = "pb2"


DEFAULT_PB2_MAX_POINTS = 64


@dataclass(frozen=True)
class ExploreConfig:
    """PERTURB multiplies by a perturbation factor; RESAMPLE also redraws each parameter from its
    prior with `resample_probability`; PB2 picks continuous values by a GP-UCB bandit fitted on
    at most `pb2_max_points` recent (time, hyperparameters) -> improvement points."""

    strategy: ExploreStrategy = ExploreStrategy.PERTURB
    resample_probability: float = 0.25
    pb2_max_points: int = DEFAULT_PB2_MAX_POINTS


@dataclass(frozen=True)
class AlgorithmConfig:
    """Evolution settings; 0 for max_generations/max_trials/steps_per_trial means no limit/hint,
    and 0 for `rejuvenate_after_generations` means never."""

    population_size: int = 10
    opponent_generations: int = 2
    perturbation_factors: tuple[float, ...] = (0.8, 1.2)
    max_generations: int = 0
    max_trials: int = 0
    steps_per_trial: int = 0
    seed: int = 0
    median_stopping: MedianStopping = field(default_factory=MedianStopping)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    explore: ExploreConfig = field(default_factory=ExploreConfig)
    rejuvenate_after_generations: int = 0


DEFAULT_KEEP_BEST = 3


@dataclass(frozen=True)
class CheckpointPolicy:
    """Where checkpoints may live (`roots`, normalised; empty: anywhere) and how many of the best
    completed trials' final checkpoints the collector keeps for serving."""

    roots: tuple[str, ...] = ()
    keep_best: int = DEFAULT_KEEP_BEST


@dataclass(frozen=True)
class StudyConfig:
    parameters: tuple[ParameterSpec, ...]
    objectives: tuple[Objective, ...]
    comparison: Comparison = Comparison.LEXICOGRAPHIC
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    checkpoints: CheckpointPolicy = field(default_factory=CheckpointPolicy)


class StudyState(enum.Enum):
    ACTIVE = "active"
    DONE = "done"
    PAUSED = "paused"


@dataclass(frozen=True)
class Study:
    name: str
    config: StudyConfig
    state: StudyState = StudyState.ACTIVE
    trial_count: int = 0
    create_time: datetime | None = None


class TrialStatus(enum.Enum):
    ACTIVE = "active"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"


class CheckpointState(enum.Enum):
    """A measurement's checkpoint: on disk, decided for deletion (never handed out again), deleted."""

    PRESENT = "present"
    COLLECTING = "collecting"
    DELETED = "deleted"


@dataclass(frozen=True)
class Measurement:
    step: int
    metrics: Mapping[str, float]
    checkpoint_path: str = ""
    elapsed_seconds: float = 0.0
    create_time: datetime | None = None
    checkpoint_state: CheckpointState = CheckpointState.PRESENT

    def is_finite(self, metrics: tuple[str, ...]) -> bool:
        """False when any of `metrics` diverged (NaN or infinite) or is missing."""
        return all(m in self.metrics and math.isfinite(self.metrics[m]) for m in metrics)


@dataclass(frozen=True)
class LineageRecord:
    """What selection needs to know of a trial's ancestors, fixed when the trial is created (so a
    decision never walks the lineage): the last few ancestors' final (global step, fitness) pairs,
    oldest first, ending with the parent's; the global step at which the lineage last copied
    another member (its last exploit, 0 for a fresh line) and the generation of the child that
    copied; the lineage's best fitness so far and
    the generation that reached it (for rejuvenation). Fitness is oriented: larger is better."""

    history: tuple[tuple[int, tuple[float, ...]], ...] = ()
    exploit_step: int = 0
    exploit_generation: int = 0
    best: tuple[float, ...] | None = None
    best_generation: int = 0

    @property
    def start_step(self) -> int:
        """The global step the trial starts from: its parent's final step (0 when fresh)."""
        return self.history[-1][0] if self.history else 0


@dataclass(frozen=True)
class Trial:
    """A training session. `initiated_trial_id` is the live child this trial's reproduction made
    (None while the trial has not initiated one, or after that child was stopped or failed).
    `steps`: the training steps the service asks for (0: the worker decides); a child of a parent
    from an older generation is asked for more, so every lineage trains the full budget."""

    id: int
    study: str
    number: int
    generation: int
    status: TrialStatus
    hparams: Mapping[str, ParamValue]
    warm_start_checkpoint_path: str = ""
    parent_trial_id: int | None = None
    initiator_parent_trial_id: int | None = None
    measurements: tuple[Measurement, ...] = ()
    final_measurement: Measurement | None = None
    worker_id: str = ""
    stop_requested: bool = False
    status_message: str = ""
    initiated_trial_id: int | None = None
    create_time: datetime | None = None
    heartbeat_time: datetime | None = None
    end_time: datetime | None = None
    steps: int = 0
    lineage: LineageRecord = field(default_factory=LineageRecord)


@dataclass(frozen=True)
class TrialProposal:
    """A decision of the engine: a trial to create. `initiator_id` is the trial whose
    reproduction slot it consumes (None for generation 0)."""

    generation: int
    hparams: Mapping[str, ParamValue]
    warm_start_checkpoint_path: str = ""
    parent_trial_id: int | None = None
    initiator_id: int | None = None
    steps: int = 0
    lineage: LineageRecord = field(default_factory=LineageRecord)


@dataclass(frozen=True)
class PopulationView:
    """The slice of a study one suggestion needs; its size is bounded by population × k, not by
    the study's history.

    `live_in_generation_zero`: ACTIVE + COMPLETED trials of generation 0.
    `trials_counted`: trials that count toward `max_trials` (all but STOPPED ones).
    `initiator`: the oldest (by generation, then number) COMPLETED trial that has not initiated a
    reproduction and whose child would stay below `max_generations`; None if there is none.
    `initiator_generation_size`: ACTIVE + COMPLETED trials in the initiator's generation.
    `opponents`: COMPLETED trials (with final measurements) of the initiator's past k generations
    (generations g-k+1 .. g), the initiator excluded, in (generation, number) order. A store may
    hand a lazy sequence that reads an opponent only when it is indexed: a tournament looks at one.
    `history`: for PB2 only, COMPLETED trials of the recent generations (its GP's data), newest
    generations first; empty otherwise.
    """

    live_in_generation_zero: int
    trials_counted: int
    initiator: Trial | None = None
    initiator_generation_size: int = 0
    opponents: Sequence[Trial] = ()
    history: Sequence[Trial] = ()
