"""The exploit step: whether an initiator may be replaced yet, what members are compared on, and
who wins (the paper's binary tournament, section 3.5, or Ray Tune's truncation).

Greedy PBT compares members on their last measurement, which rewards whatever lowers the loss
*now* (a smaller learning rate, say) and starves slow progress: PBT's short-horizon bias. The
remedies here are a burn-in and a "ready" interval (members are not replaced until they have had
time to show their worth, as Ray Tune's `perturbation_interval`), and scores that look at the
lineage over several generations: the mean (SMOOTHED) or the rate of improvement (IMPROVEMENT,
after FIRE-PBT, Dalibard & Jaderberg 2021).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pbt_service.core.fitness import Fitness, compare_fitness, fitness
from pbt_service.core.types import (
    AlgorithmConfig,
    Comparison,
    Objective,
    OpponentStrategy,
    SelectionConfig,
    SelectionScore,
    SelectionStrategy,
    Trial,
)

ALL_GENERATIONS = 1_000_000_000
"""The opponent window of OpponentStrategy.ANY: more generations than any study has."""


def opponent_generations(algorithm: AlgorithmConfig) -> int:
    """How many generations, the initiator's included, opponents come from (the store's k)."""
    if algorithm.selection.opponents is OpponentStrategy.SAME:
        return 1
    if algorithm.selection.opponents is OpponentStrategy.ANY:
        return ALL_GENERATIONS
    return algorithm.opponent_generations


def reads_all_opponents(algorithm: AlgorithmConfig) -> bool:
    """Whether a decision looks at every opponent (truncation ranks them), so the store should
    load them in one batch rather than one by one."""
    return algorithm.selection.strategy is SelectionStrategy.TRUNCATION


def is_ready(initiator: Trial, selection: SelectionConfig) -> bool:
    """Whether the initiator may be replaced now: it has trained `burn_in_steps` in all, and
    `ready_steps` and `ready_generations` (counting its own) since its lineage last copied
    another member. Steps are global steps, so that rule holds whatever the steps per trial.

    Example:
        >>> from pbt_service.core.types import Measurement, TrialStatus
        >>> t = Trial(1, "s", 1, 0, TrialStatus.COMPLETED, {}, final_measurement=Measurement(50, {}))
        >>> is_ready(t, SelectionConfig(ready_steps=100)), is_ready(t, SelectionConfig(ready_steps=50))
        (False, True)
    """
    step = initiator.final_measurement.step if initiator.final_measurement else 0
    lineage = initiator.lineage
    return (
        step >= selection.burn_in_steps
        and step - lineage.exploit_step >= selection.ready_steps
        and initiator.generation + 1 - lineage.exploit_generation >= selection.ready_generations
    )


def score(trial: Trial, objectives: Sequence[Objective], selection: SelectionConfig) -> Fitness | None:
    """What selection compares for `trial`; None when it cannot compete (no finite fitness).

    LAST: the fitness of its final measurement. SMOOTHED: the mean fitness of the lineage's last
    `score_window` finals, this one included. IMPROVEMENT: the fitness gained per step over the
    same window, from the oldest final in it to this one; a trial with no ancestor yet has no rate
    and competes on its LAST fitness (see `compare_scores`).
    """
    own = fitness(trial.final_measurement, objectives)
    if own is None or selection.score is SelectionScore.LAST:
        return own
    step = trial.final_measurement.step if trial.final_measurement else 0
    window = [*trial.lineage.history, (step, own)][-selection.score_window :]
    if selection.score is SelectionScore.SMOOTHED:
        return tuple(float(np.mean([f[i] for _, f in window])) for i in range(len(own)))
    first_step, first = window[0]
    if len(window) < 2 or step <= first_step:
        return None
    return tuple((own[i] - first[i]) / (step - first_step) for i in range(len(own)))


def compare_scores(
    a: Trial, b: Trial, objectives: Sequence[Objective], comparison: Comparison, selection: SelectionConfig
) -> int:
    """1 if `a` wins, -1 if `b` wins, 0 on a tie. A diverged trial loses to any finite one. Under
    IMPROVEMENT, a pair of which one has no rate yet (a fresh lineage) is compared on LAST."""
    return _compare_keys(_key(a, objectives, selection), _key(b, objectives, selection), comparison)


_Key = tuple[Fitness | None, Fitness | None]
"""A trial's (fitness, score), computed once when a decision compares it with many others."""


def _key(trial: Trial, objectives: Sequence[Objective], selection: SelectionConfig) -> _Key:
    own = fitness(trial.final_measurement, objectives)
    return own, own if own is None or selection.score is SelectionScore.LAST else score(trial, objectives, selection)


def _compare_keys(a: _Key, b: _Key, comparison: Comparison) -> int:
    """`compare_scores` on precomputed keys: scores when both have one, else fitness."""
    (fa, sa), (fb, sb) = a, b
    if fa is None or fb is None or sa is None or sb is None:
        return compare_fitness(fa, fb, comparison)
    return compare_fitness(sa, sb, comparison)


def select_parent(
    initiator: Trial,
    opponents: Sequence[Trial],
    objectives: Sequence[Objective],
    comparison: Comparison,
    selection: SelectionConfig,
    rng: np.random.Generator,
) -> Trial | None:
    """The trial the initiator's child warm-starts from (the initiator itself when it keeps its
    place), or None when the winner diverged: a NaN trial must never be warm-started from.

    The caller excludes the initiator from `opponents`.
    """
    if selection.strategy is SelectionStrategy.TRUNCATION:
        winner = truncation(initiator, opponents, objectives, comparison, selection, rng)
    else:
        winner = tournament(initiator, opponents, objectives, comparison, selection, rng)
    if fitness(winner.final_measurement, objectives) is None:
        return None
    return winner


def tournament(
    initiator: Trial,
    opponents: Sequence[Trial],
    objectives: Sequence[Objective],
    comparison: Comparison,
    selection: SelectionConfig,
    rng: np.random.Generator,
) -> Trial:
    """Binary tournament: the initiator against one uniformly drawn opponent; a tie goes to the
    initiator (its own line continues), and with no opponents it wins alone. Reads one opponent."""
    if not opponents:
        return initiator
    opponent = opponents[int(rng.integers(len(opponents)))]
    return opponent if compare_scores(opponent, initiator, objectives, comparison, selection) > 0 else initiator


def truncation(
    initiator: Trial,
    opponents: Sequence[Trial],
    objectives: Sequence[Objective],
    comparison: Comparison,
    selection: SelectionConfig,
    rng: np.random.Generator,
) -> Trial:
    """Ray Tune's rule: rank the initiator among itself and its opponents; if it is in the bottom
    `truncation_quantile`, it copies a member drawn uniformly from the top quantile, else it keeps
    its place. At least one member is in each quantile once there are two members; ranks of
    members that tie keep the initiator on the better side. Reads every opponent."""
    members = [initiator, *opponents]
    if len(members) < 2:
        return initiator
    keys = [_key(m, objectives, selection) for m in members]
    order = _ranked(keys, comparison)
    cut = max(1, math.floor(len(members) * selection.truncation_quantile))
    if 0 not in order[-cut:]:  # index 0 is the initiator
        return initiator
    top = [members[i] for i in order[:cut] if _compare_keys(keys[i], keys[0], comparison) > 0]
    if not top:
        return initiator  # no top member beats it (ties, or Pareto trade-offs): nothing better to copy
    return top[int(rng.integers(len(top)))]


def _ranked(keys: list[_Key], comparison: Comparison) -> list[int]:
    """Member indices, best first: by the number of members each beats (a total order for
    lexicographic scores, the domination count for Pareto); equal counts keep the initiator
    (index 0) ahead. Each member's score is computed once, not once per pair."""
    wins = [sum(_compare_keys(k, other, comparison) > 0 for other in keys) for k in keys]
    return sorted(range(len(keys)), key=lambda i: -wins[i])
