"""The suggestion use case: hand a worker its trials, deciding new ones under the study lock.

A worker that asks again (a retried call, a restarted worker with the same id) gets back the
trials it already holds before anything new is decided, so a lost reply never loses a trial.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pbt_service.controller import leases
from pbt_service.core import evolution
from pbt_service.core.types import Study, StudyState, Trial, TrialProposal
from pbt_service.store.base import Transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Suggestion:
    """`trials` for the worker; empty with `study_done` False means: ask again later
    (`study_paused` says why, when the study is paused)."""

    trials: tuple[Trial, ...]
    study_done: bool = False
    study_paused: bool = False


def suggest(
    tx: Transaction,
    study_name: str,
    worker: str,
    count: int,
    clock: Callable[[], datetime],
    lease_seconds: float,
    on_expired: Callable[[list[int]], None] | None = None,
) -> Suggestion:
    """Up to `count` trials held by `worker`: those it holds already, then new ones. Raises
    NotFoundError for an unknown study. `on_expired` is given the trials whose lapsed leases this
    transaction stopped (it may be rolled back: the caller counts them once it commits).

    A new trial's `create_time` is read from `clock` after its decision, so it is never earlier
    than the end of the parent it was decided from: every commit the decision saw came before it
    (on one clock; replicas need synchronized clocks, as for leases)."""
    now = clock()
    head = tx.lock_study_for_suggestion(study_name, worker, leases.lease_start(now, lease_seconds))
    study = head.study
    if study.state is StudyState.DONE:
        return Suggestion((), study_done=True)
    if head.has_lapsed:
        expired = leases.expire(tx, study_name, now, lease_seconds, lock=False)
        if on_expired is not None:
            on_expired(expired)
    trials = tx.active_trials(study_name, worker) if head.holds_trials else []
    if study.state is StudyState.PAUSED:  # a paused study hands out only what the worker holds
        return Suggestion(tuple(trials), study_paused=True)
    number = study.trial_count
    while len(trials) < count:
        proposal = _propose(tx, study, number + 1)
        if proposal is None:
            break
        trials.append(tx.create_trial(study_name, proposal, worker, clock()))
        number += 1
    if trials:
        return Suggestion(tuple(trials))
    if tx.has_active_trials(study_name):
        return Suggestion(())
    # Nothing is active, so nothing changes under the study lock any more, but the view may
    # predate the completion of the last active trial: decide once more before declaring done.
    proposal = _propose(tx, study, number + 1)
    if proposal is not None:
        return Suggestion((tx.create_trial(study_name, proposal, worker, clock()),))
    tx.set_study_state(study_name, StudyState.DONE)
    log.info("study %s is done", study_name)
    return Suggestion((), study_done=True)


def _propose(tx: Transaction, study: Study, number: int) -> TrialProposal | None:
    view = tx.population_view(study.name, study.config)
    return evolution.next_trial(study.config, view, evolution.decision_rng(study.config.algorithm.seed, number))
