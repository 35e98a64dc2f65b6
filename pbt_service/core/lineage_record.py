"""A child's `LineageRecord`, derived from its parent's when the trial is created, and the
staleness rule of rejuvenation.

Keeping a short summary on each trial means a decision never walks the lineage in the database:
the records carry the ancestors' recent fitness (for smoothed and improvement scores), the last
exploit (for the ready rule) and the lineage's best (for rejuvenation).
"""

from __future__ import annotations

from collections.abc import Sequence

from pbt_service.core.fitness import compare_fitness, fitness
from pbt_service.core.types import Comparison, LineageRecord, Objective, Trial


def child_record(
    parent: Trial, initiator: Trial, objectives: Sequence[Objective], comparison: Comparison, window: int
) -> LineageRecord:
    """The record of a child that warm-starts from `parent` on behalf of `initiator`.

    Its history is the parent's plus the parent's own final, the last `window` kept (at least
    one, which gives the child's start step). Copying a member other than the initiator is an
    exploit: it happens at the parent's final step. The best is carried along the line the child
    continues, which is the parent's.
    """
    continues = parent.id == initiator.id
    final = parent.final_measurement
    own = fitness(final, objectives)
    step = final.step if final is not None else 0
    history = parent.lineage.history
    if own is not None:
        history = (*history, (step, own))
    best, best_generation = parent.lineage.best, parent.lineage.best_generation
    if own is not None and (best is None or compare_fitness(own, best, comparison) > 0):
        best, best_generation = own, parent.generation
    return LineageRecord(
        history=history[-max(window, 1) :],
        exploit_step=parent.lineage.exploit_step if continues else step,
        exploit_generation=parent.lineage.exploit_generation if continues else initiator.generation + 1,
        best=best,
        best_generation=best_generation,
    )


def is_stale(trial: Trial, objectives: Sequence[Objective], comparison: Comparison, generations: int) -> bool:
    """Whether the lineage ending in `trial` has not improved on its best for `generations`
    generations (0: never stale). A trial better than every ancestor is not stale.

    Example:
        >>> from pbt_service.core.types import Measurement, TrialStatus, LineageRecord, Objective
        >>> old = LineageRecord(best=(0.9,), best_generation=1)
        >>> t = Trial(1, "s", 1, 5, TrialStatus.COMPLETED, {}, final_measurement=Measurement(9, {"acc": 0.8}),
        ...           lineage=old)
        >>> is_stale(t, [Objective("acc")], Comparison.LEXICOGRAPHIC, 4), is_stale(t, [Objective("acc")],
        ...     Comparison.LEXICOGRAPHIC, 5)
        (True, False)
    """
    if generations <= 0:
        return False
    own = fitness(trial.final_measurement, objectives)
    best = trial.lineage.best
    if best is None or (own is not None and compare_fitness(own, best, comparison) > 0):
        return False
    return trial.generation - trial.lineage.best_generation >= generations
