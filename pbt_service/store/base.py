"""The storage contract every backend fulfils.

Contract (after Optuna's `BaseStorage`):
- All reads and writes happen inside `Storage.transaction()`; leaving the block commits, an
  exception rolls everything back, so a rejected or crashed call writes nothing.
- Methods return frozen domain objects (copies); nothing returned is tied to a connection.
- Decisions about a study are serialized by `get_study(name, lock=True)`: a row lock
  (`SELECT ... FOR NO KEY UPDATE`) on PostgreSQL, a write transaction (`BEGIN IMMEDIATE`) on
  SQLite. Changes to one trial are serialized by `get_trial(id, lock=True)`.
- Lock order, so that replicas never deadlock: the study before its trials, a trial before the
  initiator it hands back. Whatever stops a trial (it updates the study's counter) therefore
  holds the study lock first; reports and completions lock only their trial.
- Reads for a decision are bounded by the population and the opponent window, never by the
  study's history: counters and indexes stand in for counting.
- Transient failures (serialization failures, deadlocks, a database that went away) are retried a
  bounded number of times by `Storage.run`, then raised as `UnavailableError`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pbt_service.core.access import Role, TokenRecord
from pbt_service.core.types import (
    Measurement,
    PopulationView,
    Study,
    StudyConfig,
    StudyState,
    Trial,
    TrialProposal,
    TrialStatus,
)

T = TypeVar("T")
LEASE_EXPIRED = "lease expired"
"""The status message of a trial stopped by `expire_leases`."""


@dataclass(frozen=True)
class TrialState:
    """What a report, heartbeat or completion decides on: a locked trial's state (no params, no
    measurements) and its study's config, read in one statement."""

    id: int
    study: str
    generation: int
    status: TrialStatus
    worker_id: str
    stop_requested: bool
    status_message: str
    create_time: datetime
    heartbeat_time: datetime | None
    config: StudyConfig


@dataclass(frozen=True)
class SuggestionHead:
    """The locked study a suggestion decides on, and which scans it needs: `has_lapsed` (an ACTIVE
    trial's last heartbeat is older than the cutoff) and `holds_trials` (the worker holds one)."""

    study: Study
    has_lapsed: bool
    holds_trials: bool


@dataclass(frozen=True)
class CollectionView:
    """What the checkpoint collector decides on (see `garbage_collection.decide`): the trials with
    a checkpoint not deleted, the ACTIVE ones and the COMPLETED ones that may still initiate, with
    all their measurements; and how many trials generation 0 holds (ACTIVE + COMPLETED)."""

    trials: list[Trial]
    live_in_generation_zero: int


class Transaction(abc.ABC):
    """One database transaction. Raises `NotFoundError`/`AlreadyExistsError` as documented."""

    # --- studies ---
    @abc.abstractmethod
    def create_study(self, name: str, config: StudyConfig, now: datetime) -> Study:
        """Raises AlreadyExistsError if the name is taken."""

    @abc.abstractmethod
    def get_study(self, name: str, *, lock: bool = False) -> Study:
        """Raises NotFoundError. With lock=True, holds the study's lock until the transaction ends."""

    @abc.abstractmethod
    def lock_study_for_suggestion(self, name: str, worker_id: str, heartbeat_before: datetime) -> SuggestionHead:
        """`get_study(name, lock=True)` and the two facts of SuggestionHead, in one round trip.
        Raises NotFoundError."""

    @abc.abstractmethod
    def list_studies(self, *, after_name: str = "", limit: int | None = None) -> list[Study]:
        """Studies whose name sorts after `after_name` (all for ""), by name, at most `limit` (all
        for None)."""

    @abc.abstractmethod
    def set_study_state(self, name: str, state: StudyState) -> None:
        """Raises NotFoundError."""

    # --- decisions (call with the study locked) ---
    @abc.abstractmethod
    def expire_leases(self, study: str, heartbeat_before: datetime, now: datetime) -> list[int]:
        """Stops ACTIVE trials whose last heartbeat is older than `heartbeat_before`, handing their
        reproduction back to their initiators; returns their ids. Call with the study locked."""

    @abc.abstractmethod
    def population_view(self, study: str, config: StudyConfig) -> PopulationView:
        """What the engine needs for the next suggestion (see PopulationView)."""

    @abc.abstractmethod
    def create_trial(self, study: str, proposal: TrialProposal, worker_id: str, now: datetime) -> Trial:
        """Inserts an ACTIVE trial held by `worker_id` with the next number of the study, and marks
        `proposal.initiator_id` (if any) as having initiated it."""

    @abc.abstractmethod
    def active_trials(self, study: str, worker_id: str | None = None) -> list[Trial]:
        """ACTIVE trials of the study (of one worker when given), by number, with measurements."""

    @abc.abstractmethod
    def has_active_trials(self, study: str) -> bool:
        """Whether any trial of the study is ACTIVE (one index probe)."""

    @abc.abstractmethod
    def completed_trials(
        self, study: str, min_generation: int, max_generation: int, *, finals_only: bool = False
    ) -> list[Trial]:
        """COMPLETED trials with generation in [min_generation, max_generation], in (generation,
        number) order, with all their measurements, or only the final one with `finals_only` (what
        selection reads)."""

    # --- checkpoint collection (call with the study locked) ---
    @abc.abstractmethod
    def collection_view(self, study: str) -> CollectionView:
        """Raises NotFoundError for an unknown study."""

    @abc.abstractmethod
    def mark_checkpoints_collecting(self, measurements: Sequence[tuple[int, int]]) -> int:
        """Marks the (trial id, step) measurements whose checkpoint is PRESENT as COLLECTING;
        returns how many changed."""

    @abc.abstractmethod
    def mark_checkpoints_deleted(self, study: str, paths: Sequence[str]) -> int:
        """Marks the study's COLLECTING measurements at these paths as DELETED; returns how many
        changed (0 for a repeat)."""

    # --- trials ---
    @abc.abstractmethod
    def lock_trial(self, trial_id: int) -> TrialState:
        """Locks the trial's row until the transaction ends. Raises NotFoundError."""

    @abc.abstractmethod
    def renew_lease(
        self, trial_id: int, worker_id: str, valid_after: datetime, now: datetime, *, new_step: int | None = None
    ) -> TrialState | None:
        """Locks the trial and renews its lease when it is ACTIVE, held by `worker_id`, its last
        heartbeat is at or after `valid_after` and (given `new_step`) it has no measurement at that
        step; returns its state, or None when any of that fails (`lock_trial` then tells why).
        One statement: the common case of every worker call."""

    @abc.abstractmethod
    def get_trial(self, trial_id: int, *, lock: bool = False, with_measurements: bool = True) -> Trial:
        """Raises NotFoundError. With lock=True, holds the trial's row lock. Without measurements
        the trial carries only its final one."""

    @abc.abstractmethod
    def add_measurement(
        self, trial_id: int, measurement: Measurement, now: datetime, *, max_measurements: int = 2**31 - 1
    ) -> bool:
        """Records a measurement at time `now` (its own `create_time` is ignored); False (and no
        change) if the step exists. Raises NotFoundError, and TrialFullError when the trial
        already holds `max_measurements`. The lease is the caller's to renew (`renew_lease`)."""

    @abc.abstractmethod
    def heartbeat(self, trial_id: int, now: datetime) -> None:
        """Renews the trial's lease."""

    @abc.abstractmethod
    def request_stop(self, trial_ids: Sequence[int]) -> None:
        """Sets stop_requested on the trials."""

    @abc.abstractmethod
    def finish_trial(
        self,
        trial_id: int,
        status: TrialStatus,
        final_measurement: Measurement | None,
        message: str,
        now: datetime,
    ) -> Trial:
        """Ends an ACTIVE trial. COMPLETED stores `final_measurement` (which must be one of the
        trial's measurements or is added as one). STOPPED and FAILED hand the reproduction back:
        the initiator's `initiated_trial_id` is cleared so it initiates again. STOPPED also
        counts in the study's stopped trials: call it with the study locked. Raises
        NotFoundError, and TrialStateError for a trial that is not ACTIVE or a COMPLETED one
        without any measurement."""

    @abc.abstractmethod
    def list_trials(
        self,
        study: str,
        *,
        statuses: Sequence[TrialStatus] = (),
        generation: int | None = None,
        after_number: int = 0,
        limit: int = 100,
        with_measurements: bool = True,
    ) -> list[Trial]:
        """Trials with number > after_number, by number, at most `limit`. Raises NotFoundError for
        an unknown study."""

    # --- access tokens and service-wide reads ---
    @abc.abstractmethod
    def add_token(
        self, name: str, token_hash: str, role: Role, studies: Sequence[str] | None, now: datetime
    ) -> TokenRecord:
        """Stores a token's hash. Raises AlreadyExistsError for a hash already stored."""

    @abc.abstractmethod
    def find_token(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash, revoked or not; None if unknown."""

    @abc.abstractmethod
    def revoke_token(self, token_id: int, now: datetime) -> TokenRecord:
        """Marks the token revoked (once: a second revoke keeps the first time). Raises
        NotFoundError."""

    @abc.abstractmethod
    def list_tokens(self) -> list[TokenRecord]:
        """Every token, by id."""

    @abc.abstractmethod
    def study_of_trial(self, trial_id: int) -> str | None:
        """The name of the trial's study; None for an unknown trial."""

    @abc.abstractmethod
    def trial_counts(self) -> list[tuple[str, TrialStatus, int]]:
        """(study, status, trials) for every study and status that has trials: one grouped read."""


class Storage(abc.ABC):
    """A database holding studies and trials; safe to share between threads and processes."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """Opens one transaction: commit on success, rollback on any exception."""

    def run(self, work: Callable[[Transaction], T], *, timeout_s: float | None = None) -> T:
        """Runs `work` in a transaction, retrying transient database errors a bounded number of
        times (with the whole transaction redone); raises UnavailableError when they persist or
        `timeout_s` (e.g. what is left of the caller's deadline) has passed."""
        with self.transaction() as tx:
            return work(tx)

    @abc.abstractmethod
    def close(self) -> None:
        """Releases connections."""


def iterate_all_trials(storage: Storage, study: str, page: int = 500) -> Iterator[Trial]:
    """Every trial of a study in number order, one transaction per page."""
    after = 0
    while True:

        def list_page(tx: Transaction, after_number: int = after) -> list[Trial]:
            return tx.list_trials(study, after_number=after_number, limit=page)

        batch = storage.run(list_page)
        yield from batch
        if len(batch) < page:
            return
        after = batch[-1].number
