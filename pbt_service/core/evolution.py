"""Initiator based evolution (paper Algorithm 1, sections 3.5 and 3.8).

One call decides one new trial from a bounded `PopulationView`; the service keeps no state
between calls, and the randomness of a decision comes only from the study seed and the number
of the trial being created, so a rerun of the same study makes the same decisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pbt_service.core import selection
from pbt_service.core.exploration import explore
from pbt_service.core.fitness import fitness
from pbt_service.core.lineage_record import child_record, is_stale
from pbt_service.core.search_space import sample_hparams
from pbt_service.core.types import ParamValue, PopulationView, StudyConfig, Trial, TrialProposal

_UINT64 = 0xFFFF_FFFF_FFFF_FFFF


def decision_rng(seed: int, trial_number: int) -> np.random.Generator:
    """The generator for creating trial `trial_number` of a study seeded with `seed`.

    Negative seeds (the API takes an int64) are folded into uint64.

    Example:
        >>> decision_rng(7, 3).random() == decision_rng(7, 3).random()
        True
    """
    return np.random.default_rng([seed & _UINT64, trial_number])


def next_trial(config: StudyConfig, view: PopulationView, rng: np.random.Generator) -> TrialProposal | None:
    """Decide the next trial to create, or None if nothing can start now.

    Generation 0 is filled by random sampling. After that each completed trial, oldest first,
    initiates one reproduction; in budget mode it waits until its own generation holds
    `population_size` members, so few workers simulate a large population. None means either
    the budget is spent or the study must wait for running trials; the caller tells the two
    apart by whether any trial is still active.

    A reproduction: an initiator that is not ready yet (`selection.is_ready`) continues its own
    line unchanged; a stale one that is not the best in view restarts from scratch
    (rejuvenation); otherwise selection picks the parent (itself or an opponent) and the explore
    step derives the child's hyperparameters from the parent's.

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
        return _fresh(config, 0, None, rng)
    initiator = view.initiator
    if initiator is None or view.initiator_generation_size < algo.population_size:
        return None
    generation = initiator.generation + 1
    if algo.max_generations > 0 and generation >= algo.max_generations:
        return None
    if fitness(initiator.final_measurement, config.objectives) is not None and not selection.is_ready(
        initiator, algo.selection
    ):
        return _child(config, initiator, initiator, dict(initiator.hparams), generation)
    if _rejuvenates(config, initiator, view.opponents):
        return _fresh(config, generation, initiator.id, rng)
    parent = selection.select_parent(
        initiator, view.opponents, config.objectives, config.comparison, algo.selection, rng
    )
    if parent is None:
        return _fresh(config, generation, initiator.id, rng)
    return _child(config, parent, initiator, explore(config, parent.hparams, view.history, rng), generation)


def steps_to_train(config: StudyConfig, generation: int, start_step: int) -> int:
    """How many steps the service asks a trial for (0: the worker decides, when the study sets no
    `steps_per_trial`). A warm-started trial of generation g is asked to reach global step
    (g + 1) * steps_per_trial, so the child of a parent from an older generation catches up and
    every lineage of the last generation has trained the whole budget; a fresh line trains one
    interval."""
    per_trial = config.algorithm.steps_per_trial
    if per_trial <= 0:
        return 0
    return max(per_trial, (generation + 1) * per_trial - start_step)


def _fresh(config: StudyConfig, generation: int, initiator_id: int | None, rng: np.random.Generator) -> TrialProposal:
    """A new lineage from the prior: generation 0, a diverged match, or a rejuvenation."""
    return TrialProposal(
        generation=generation,
        hparams=sample_hparams(config.parameters, rng),
        initiator_id=initiator_id,
        steps=steps_to_train(config, 0, 0),
    )


def _child(
    config: StudyConfig, parent: Trial, initiator: Trial, hparams: dict[str, ParamValue], generation: int
) -> TrialProposal:
    record = child_record(
        parent, initiator, config.objectives, config.comparison, config.algorithm.selection.score_window
    )
    return TrialProposal(
        generation=generation,
        hparams=hparams,
        warm_start_checkpoint_path=parent.final_measurement.checkpoint_path if parent.final_measurement else "",
        parent_trial_id=parent.id,
        initiator_id=initiator.id,
        steps=steps_to_train(config, generation, record.start_step),
        lineage=record,
    )


def _rejuvenates(config: StudyConfig, initiator: Trial, opponents: Sequence[Trial]) -> bool:
    """Whether the initiator's stale lineage restarts from scratch. The best member in view is
    never restarted: rejuvenation refreshes the population, it does not discard its best model.
    Only a stale initiator reads all its opponents."""
    algo = config.algorithm
    if not is_stale(initiator, config.objectives, config.comparison, algo.rejuvenate_after_generations):
        return False
    return any(
        selection.compare_scores(o, initiator, config.objectives, config.comparison, algo.selection) > 0
        for o in opponents
    )
