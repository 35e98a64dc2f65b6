"""Read-only use cases: one trial, a page of a study's trials; the page of studies (`StudyPage`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pbt_service.core.types import Study, Trial, TrialStatus
from pbt_service.store.base import Transaction


@dataclass(frozen=True)
class TrialPage:
    """`next_after` is the number to pass as `after_number` for the next page; None on the last."""

    trials: tuple[Trial, ...]
    next_after: int | None


@dataclass(frozen=True)
class StudyPage:
    """`next_after` is the name to pass as `after_name` for the next page; None on the last."""

    studies: tuple[Study, ...]
    next_after: str | None


def get_trial(tx: Transaction, trial_id: int) -> Trial:
    """Raises NotFoundError."""
    return tx.get_trial(trial_id)


def list_trials(
    tx: Transaction,
    study: str,
    *,
    statuses: Sequence[TrialStatus] = (),
    generation: int | None = None,
    after_number: int = 0,
    page_size: int = 100,
    with_measurements: bool = True,
) -> TrialPage:
    """Trials with number > after_number, by number. Raises NotFoundError for an unknown study."""
    tx.get_study(study)
    trials = tx.list_trials(
        study, statuses=statuses, generation=generation, after_number=after_number,
        limit=page_size + 1, with_measurements=with_measurements,
    )  # fmt: skip
    more = len(trials) > page_size
    return TrialPage(tuple(trials[:page_size]), trials[page_size - 1].number if more else None)
