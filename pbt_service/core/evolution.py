"""Initiator based evolution (paper Algorithm 1, sections 3.5 and 3.8).

One call decides one new trial from a bounded `PopulationView`; the service keeps no state
between calls, and the randomness of a decision comes only from the study seed and the number
of the trial being created, so a rerun of the same study makes the same decisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pbt_service.core.fitness import compare, fitness
from pbt_service.core.mutation import mutate_hparams
from pbt_service.core.search_space import sample_hparams
from pbt_service.core.types import Comparison, Objective, PopulationView, StudyConfig, Trial, TrialProposal

_UINT64 = 0xFFFF_FFFF_FFFF_FFFF


def decision_rng(seed: int, trial_number: int) -> np.random.Generator:
    """The generator for creating trial `trial_number` of a study seeded with `seed`.

    Negative seeds (the API takes an int64) are folded into uint64.

    Example:
        >>> decision_rng(7, 3).random() == decision_rng(7, 3).random()
        True
    """
    return np.random.default_rng([seed & _UINT64, trial_number])


def tournament(
    initiator: Trial,
    opponents: Sequence[Trial],
    objectives: Sequence[Objective],
    comparison: Comparison,
    rng: np.random.Generator,
) -> Trial | None:
    """Binary tournament selection: the initiator against one uniformly drawn opponent.

    The caller excludes the initiator from `opponents`. A tie goes to the initiator (its own
    line continues); with no opponents it wins alone. Returns None when the winner diverged,
    i.e. nobody in the match has a finite fitness: a NaN trial must never be warm-started from.
    """
    winner = initiator
    if opponents:
        opponent = opponents[int(rng.integers(len(opponents)))]
        if compare(opponent, initiator, objectives, comparison) > 0:
            winner = opponent
    if fitness(winner.final_measurement, objectives) is None:
        return None
    return winner


def next_trial(config: StudyConfig, view: PopulationView, rng: np.random.Generator) -> TrialProposal | None:
    """Decide the next trial to create, or None if nothing can start now.

    Generation 0 is filled by random sampling. After that each completed trial, oldest first,
    initiates one reproduction; in budget mode it waits until its own generation holds
    `population_size` members, so few workers simulate a large population. None means either
    the budget is spent or the study must wait for running trials; the caller tells the two
    apart by whether any trial is still active.

    Example:
        >>> from pbt_service.core.types import Objective, ParameterSpec, ParameterType
        >>> lr = ParameterSpec("lr", ParameterType.FLOAT, low=1e-4, high=0.1)
        >>> config = StudyConfig(parameters=(lr,), objectives=(Objective("accuracy"),))
        >>> view = PopulationView(live_in_generation_zero=0, trials_counted=0)
        >>> next_trial(config, view, decision_rng(config.algorithm.seed, 0)).generation
        0
    """
    algo = config.algorithm
    if algo.max_trials > 0 and view.trials_counted >= algo.max_trials:
        return None
    if view.live_in_generation_zero < algo.population_size:
        return TrialProposal(generation=0, hparams=sample_hparams(config.parameters, rng))
    initiator = view.initiator
    if initiator is None or view.initiator_generation_size < algo.population_size:
        return None
    generation = initiator.generation + 1
    if algo.max_generations > 0 and generation >= algo.max_generations:
        return None
    parent = tournament(initiator, view.opponents, config.objectives, config.comparison, rng)
    if parent is None:
        return TrialProposal(
            generation=generation, hparams=sample_hparams(config.parameters, rng), initiator_id=initiator.id
        )
    checkpoint = parent.final_measurement.checkpoint_path if parent.final_measurement else ""
    return TrialProposal(
        generation=generation,
        hparams=mutate_hparams(config.parameters, parent.hparams, algo.perturbation_factors, rng),
        warm_start_checkpoint_path=checkpoint,
        parent_trial_id=parent.id,
        initiator_id=initiator.id,
    )
