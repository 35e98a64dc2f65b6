"""The promises of a finished study, checked from the database itself (not through the service)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import text

from pbt_service.core.types import StudyState, Trial, TrialStatus
from pbt_service.store.base import iterate_all_trials
from pbt_service.store.sql_storage import SqlStorage

LIVE = (TrialStatus.ACTIVE, TrialStatus.COMPLETED)


@dataclass(frozen=True)
class Acked:
    """A measurement the service answered OK to."""

    trial_id: int
    step: int
    value: float


def check_finished_study(
    url: str, study: str, *, population: int, generations: int, acked: Iterable[Acked] = ()
) -> list[Trial]:
    """Asserts the invariants of a study run to its end; returns its trials.

    - numbers are 1..N without gaps or repeats, and the study's counters agree;
    - the study is DONE and no trial is ACTIVE;
    - every completed trial of a non-final generation initiated exactly one live child of the next
      generation (no reproduction twice, none skipped), a final-generation one none;
    - every generation holds exactly `population` completed trials;
    - every acknowledged measurement is stored once, with the value reported.
    """
    storage = SqlStorage.from_url(url, check_schema=False)
    try:
        trials = list(iterate_all_trials(storage, study))
        state = storage.run(lambda tx: tx.get_study(study))
        with storage.engine.connect() as connection:
            stopped_count = connection.scalar(text("SELECT stopped_count FROM studies WHERE name = :n"), {"n": study})
            duplicate_steps = connection.scalar(
                text("SELECT count(*) FROM (SELECT trial_id, step FROM measurements GROUP BY trial_id, step "
                     "HAVING count(*) > 1) AS d")
            )  # fmt: skip
    finally:
        storage.close()
    by_id = {t.id: t for t in trials}
    statuses = Counter(t.status for t in trials)
    assert [t.number for t in trials] == list(range(1, len(trials) + 1))
    assert len(by_id) == len(trials) == state.trial_count
    assert stopped_count == statuses[TrialStatus.STOPPED]
    assert state.state is StudyState.DONE and statuses[TrialStatus.ACTIVE] == 0, statuses

    live_children: dict[int, list[Trial]] = {}
    for trial in trials:
        if trial.initiator_parent_trial_id is not None and trial.status in LIVE:
            live_children.setdefault(trial.initiator_parent_trial_id, []).append(trial)
            assert trial.generation == by_id[trial.initiator_parent_trial_id].generation + 1
    for trial in trials:
        children = live_children.get(trial.id, [])
        if trial.status is TrialStatus.COMPLETED and trial.generation < generations - 1:
            assert [c.id for c in children] == [trial.initiated_trial_id], (trial, children)
        else:
            assert children == [] and trial.initiated_trial_id is None, (trial, children)

    completed = Counter(t.generation for t in trials if t.status is TrialStatus.COMPLETED)
    assert completed == {g: population for g in range(generations)}

    assert duplicate_steps == 0
    stored = {(t.id, m.step): m.metrics["score"] for t in trials for m in t.measurements}
    missing = [a for a in acked if stored.get((a.trial_id, a.step)) != a.value]
    assert missing == [], f"{len(missing)} acknowledged measurements lost or changed, e.g. {missing[:3]}"
    return trials
