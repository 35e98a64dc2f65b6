"""The application: every operation as one transaction over a `Storage`, transport-free.

Nothing here keeps state between calls: every decision is read from and written to the
database inside one transaction, so any number of replicas on one database behave as one. Each
method takes domain values and `timeout_s` (what the caller may still wait; the database gives
up before then with UnavailableError) and raises the domain errors of `pbt_service.core.errors`.

Example:
    controller = Controller(SqlStorage.from_url("sqlite:///pbt.db"))
    controller.create_study("mnist", config)
    suggestion = controller.suggest("mnist", worker="w1", count=1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Protocol, TypeVar

from pbt_service.controller import checkpoints, completion, early_stopping, leases, queries, reports, studies
from pbt_service.controller.queries import StudyPage, TrialPage
from pbt_service.controller.settings import ServiceSettings
from pbt_service.controller.suggest import Suggestion, suggest
from pbt_service.core.errors import UnavailableError
from pbt_service.core.garbage_collection import Collection
from pbt_service.core.types import Measurement, Study, StudyConfig, Trial, TrialStatus
from pbt_service.store.base import Storage, Transaction
from pbt_service.store.errors import DatabaseConfigError

R = TypeVar("R")


class ControllerEvents(Protocol):
    """What the controller tells an observer (the server's metrics), each after its transaction
    committed, so a retried or rolled-back transaction is never counted; pure notifications on the
    calling thread: implementations must be cheap and must not raise."""

    def leases_expired(self, study: str, trial_ids: Sequence[int]) -> None: ...

    def suggestion_wait(self, study: str) -> None:
        """A worker was told to ask again later: no trial for it, the study not done."""

    def database_failed(self, error: Exception) -> None:
        """An UnavailableError or DatabaseConfigError on its way to the caller."""


class _NoEvents:
    def leases_expired(self, study: str, trial_ids: Sequence[int]) -> None:
        pass

    def suggestion_wait(self, study: str) -> None:
        pass

    def database_failed(self, error: Exception) -> None:
        pass


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Controller:
    """The service's use cases over one storage, with an injectable clock for tests."""

    def __init__(
        self,
        storage: Storage,
        settings: ServiceSettings | None = None,
        clock: Callable[[], datetime] = utc_now,
        events: ControllerEvents | None = None,
    ) -> None:
        self.storage = storage
        self.settings = settings or ServiceSettings()
        self._clock = clock
        self._events: ControllerEvents = events or _NoEvents()

    def _run(self, work: Callable[[Transaction], R], timeout_s: float | None) -> R:
        try:
            return self.storage.run(work, timeout_s=timeout_s)
        except (UnavailableError, DatabaseConfigError) as error:
            self._events.database_failed(error)
            raise

    def _run_on_held_trial(self, work: Callable[[Transaction, datetime], R], timeout_s: float | None) -> R:
        """Runs a worker's call on its trial; if the trial's lease lapsed, rolls back, stops the
        lapsed trials of its study in a transaction that takes the study lock first, and raises
        FailedPreconditionError."""
        lease = self.settings.lease_seconds
        try:
            return self._run(lambda tx: work(tx, self._clock()), timeout_s)
        except leases.LeaseLapsed as lapsed:
            trial = lapsed.trial
            expired = self._run(lambda tx: leases.expire(tx, trial.study, self._clock(), lease, lock=True), timeout_s)
            if expired:
                self._events.leases_expired(trial.study, expired)
            raise leases.lapsed_error(trial, lease) from None

    # --- studies ---
    def create_study(self, name: str, config: StudyConfig, *, timeout_s: float | None = None) -> Study:
        return self._run(lambda tx: studies.create_study(tx, name, config, self._clock()), timeout_s)

    def get_study(self, name: str, *, timeout_s: float | None = None) -> Study:
        return self._run(lambda tx: studies.get_study(tx, name), timeout_s)

    def list_studies(
        self, *, after_name: str = "", page_size: int = 100, timeout_s: float | None = None
    ) -> StudyPage:
        return self._run(
            lambda tx: studies.list_studies(tx, after_name=after_name, page_size=page_size), timeout_s
        )

    def pause_study(self, name: str, *, timeout_s: float | None = None) -> Study:
        return self._run(lambda tx: studies.set_paused(tx, name, True), timeout_s)

    def resume_study(self, name: str, *, timeout_s: float | None = None) -> Study:
        return self._run(lambda tx: studies.set_paused(tx, name, False), timeout_s)

    # --- checkpoints ---
    def collect_checkpoints(
        self, study: str, *, dry_run: bool = False, limit: int = 1000, timeout_s: float | None = None
    ) -> Collection:
        return self._run(lambda tx: checkpoints.collect(tx, study, dry_run=dry_run, limit=limit), timeout_s)

    def confirm_checkpoints_deleted(self, study: str, paths: Sequence[str], *, timeout_s: float | None = None) -> int:
        return self._run(lambda tx: checkpoints.confirm_deleted(tx, study, list(paths)), timeout_s)

    # --- workers ---
    def suggest(self, study: str, worker: str, count: int = 1, *, timeout_s: float | None = None) -> Suggestion:
        lease = self.settings.lease_seconds
        expired: list[int] = []

        def work(tx: Transaction) -> Suggestion:
            expired.clear()  # from an attempt that was rolled back
            return suggest(tx, study, worker, count, self._clock, lease, expired.extend)

        suggestion = self._run(work, timeout_s)
        if expired:
            self._events.leases_expired(study, expired)
        if not suggestion.trials and not suggestion.study_done:
            self._events.suggestion_wait(study)
        return suggestion

    def report(
        self, trial_id: int, worker: str, measurement: Measurement, *, timeout_s: float | None = None
    ) -> bool:
        lease = self.settings.lease_seconds
        return self._run_on_held_trial(
            lambda tx, now: reports.report(tx, trial_id, worker, measurement, now, lease), timeout_s
        )

    def heartbeat(self, trial_id: int, worker: str, *, timeout_s: float | None = None) -> bool:
        lease = self.settings.lease_seconds
        return self._run_on_held_trial(lambda tx, now: reports.heartbeat(tx, trial_id, worker, now, lease), timeout_s)

    def complete(
        self,
        trial_id: int,
        worker: str,
        final: Measurement | None = None,
        failure_reason: str = "",
        *,
        timeout_s: float | None = None,
    ) -> Trial:
        lease = self.settings.lease_seconds
        return self._run_on_held_trial(
            lambda tx, now: completion.complete(tx, trial_id, worker, final, failure_reason, now, lease), timeout_s
        )

    def stop_trial(self, trial_id: int, worker: str = "", reason: str = "", *, timeout_s: float | None = None) -> Trial:
        return self._run(lambda tx: completion.stop_trial(tx, trial_id, worker, reason, self._clock()), timeout_s)

    def early_stopping_trials(self, study: str, *, timeout_s: float | None = None) -> list[Trial]:
        return self._run(lambda tx: early_stopping.early_stopping_trials(tx, study), timeout_s)

    # --- queries ---
    def get_trial(self, trial_id: int, *, timeout_s: float | None = None) -> Trial:
        return self._run(lambda tx: queries.get_trial(tx, trial_id), timeout_s)

    def list_trials(
        self,
        study: str,
        *,
        statuses: Sequence[TrialStatus] = (),
        generation: int | None = None,
        after_number: int = 0,
        page_size: int = 100,
        with_measurements: bool = True,
        timeout_s: float | None = None,
    ) -> TrialPage:
        return self._run(
            lambda tx: queries.list_trials(
                tx, study, statuses=statuses, generation=generation, after_number=after_number,
                page_size=page_size, with_measurements=with_measurements,
            ),
            timeout_s,
        )  # fmt: skip
