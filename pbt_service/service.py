"""The gRPC servicer: validate, run one transaction that calls the pure core, convert back.

Nothing here keeps state between calls: every decision is read from and written to the database
inside a single transaction, so any number of replicas on one database behave as one.

Leases: a trial's lease runs out `lease_seconds` after its last heartbeat (a measurement counts as
one). From then on it is dead, whichever call notices first: a suggestion on any replica stops
every lapsed trial of its study, and a report, heartbeat or completion on a lapsed trial stops it
(with the others of its study) and answers FAILED_PRECONDITION, so a late worker never revives a
trial whose reproduction may already be handed back. Replicas compare lease times with their own
clocks: keep them synchronized (NTP) to well under the lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TypeVar

import grpc

from pbt_service import converters, validation
from pbt_service.api.v1 import pbt_service_pb2 as pb
from pbt_service.api.v1 import pbt_service_pb2_grpc, study_pb2, trial_pb2
from pbt_service.core import early_stopping, evolution
from pbt_service.core.search_space import validate_config
from pbt_service.core.types import Measurement, Study, StudyConfig, StudyState, Trial, TrialProposal, TrialStatus
from pbt_service.grpc_errors import PreconditionError, rpc_errors
from pbt_service.store.base import LEASE_EXPIRED, Storage, Transaction, TrialState
from pbt_service.store.errors import TrialStateError

log = logging.getLogger(__name__)
R = TypeVar("R")
DEADLINE_MARGIN = 0.9
"""The share of a call's remaining deadline the database may use, leaving time for the reply."""


@dataclass(frozen=True)
class ServiceSettings:
    """`lease_seconds`: an active trial whose worker is silent this long is stopped and its
    reproduction handed back. `retry_after_seconds`: what a worker is told to wait when nothing
    can be suggested yet."""

    lease_seconds: float = 300.0
    retry_after_seconds: float = 1.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _held(trial: Trial | TrialState, worker_id: str) -> None:
    """A trial accepts reports only while ACTIVE and only from the worker that holds it."""
    if trial.worker_id != worker_id:
        raise PreconditionError(f"trial {trial.id} is held by worker {trial.worker_id!r}, not {worker_id!r}")
    if trial.status is not TrialStatus.ACTIVE:
        detail = f": {trial.status_message}" if trial.status_message else ""
        raise PreconditionError(f"trial {trial.id} is {trial.status.value}{detail}")


def _peer_window(config: StudyConfig, generation: int) -> tuple[int, int]:
    return max(0, generation - config.algorithm.opponent_generations + 1), generation


class _LeaseLapsed(Exception):
    """Raised inside a transaction on a trial whose lease ran out; the caller stops it in a
    transaction of its own that takes the study lock first (see the store's lock order)."""

    def __init__(self, trial: TrialState) -> None:
        super().__init__(trial.id)
        self.trial = trial


class PbtServicer(pbt_service_pb2_grpc.PbtServiceServicer):
    """Implements `pbt_service.api.v1.PbtService` over a `Storage`."""

    def __init__(
        self,
        storage: Storage,
        settings: ServiceSettings = ServiceSettings(),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._storage = storage
        self._settings = settings
        self._clock = clock

    def _run(self, context: grpc.ServicerContext, work: Callable[[Transaction], R]) -> R:
        """One transaction, given up (UNAVAILABLE) before the caller's deadline passes."""
        remaining = context.time_remaining()
        timeout = remaining * DEADLINE_MARGIN if remaining is not None else None
        return self._storage.run(work, timeout_s=timeout)

    def _run_on_held_trial(self, context: grpc.ServicerContext, work: Callable[[Transaction], R]) -> R:
        """Runs `work`; if it found its trial's lease lapsed, stops the lapsed trials of that
        study and answers FAILED_PRECONDITION."""
        try:
            return self._run(context, work)
        except _LeaseLapsed as lapsed:
            trial = lapsed.trial
            self._run(context, lambda tx: self._expire_leases(tx, trial.study, lock=True))
            raise PreconditionError(
                f"trial {trial.id} is stopped: {LEASE_EXPIRED} (no heartbeat from worker "
                f"{trial.worker_id!r} for more than {self._settings.lease_seconds:g}s)"
            ) from None

    def _lease_start(self, now: datetime) -> datetime:
        """The oldest heartbeat that still holds a lease at `now`."""
        return now - timedelta(seconds=self._settings.lease_seconds)

    def _renew(
        self, tx: Transaction, trial_id: int, worker: str, now: datetime, *, new_step: int | None = None
    ) -> TrialState:
        """The caller's trial, locked, its lease renewed: any call of its holder is a heartbeat,
        except a report of a step already recorded, which changes nothing. Raises NotFoundError,
        PreconditionError (not its trial, or not active) and _LeaseLapsed."""
        state = tx.renew_lease(trial_id, worker, self._lease_start(now), now, new_step=new_step)
        if state is None:
            state = tx.lock_trial(trial_id)
            _held(state, worker)
            if (state.heartbeat_time or state.create_time) < self._lease_start(now):
                raise _LeaseLapsed(state)
        return state

    def _expire_leases(self, tx: Transaction, study: str, *, lock: bool) -> None:
        if lock:
            tx.get_study(study, lock=True)
        now = self._clock()
        expired = tx.expire_leases(study, self._lease_start(now), now)
        if expired:
            log.info("study %s: leases expired for trials %s", study, expired)

    # --- studies ------------------------------------------------------------------------------

    @rpc_errors
    def CreateStudy(self, request: pb.CreateStudyRequest, context: grpc.ServicerContext) -> study_pb2.Study:
        name = validation.study_name(request.name)
        if not request.HasField("config"):
            raise ValueError("config: must be set")
        config = converters.study_config_from_proto(request.config)
        validate_config(config)
        now = self._clock()
        study = self._run(context, lambda tx: tx.create_study(name, config, now))
        log.info("created study %s", name)
        return converters.study_to_proto(study)

    @rpc_errors
    def GetStudy(self, request: pb.GetStudyRequest, context: grpc.ServicerContext) -> study_pb2.Study:
        name = validation.study_name(request.name)
        return converters.study_to_proto(self._run(context, lambda tx: tx.get_study(name)))

    @rpc_errors
    def ListStudies(self, request: pb.ListStudiesRequest, context: grpc.ServicerContext) -> pb.ListStudiesResponse:
        studies = self._run(context, lambda tx: tx.list_studies())
        return pb.ListStudiesResponse(studies=[converters.study_to_proto(s) for s in studies])

    # --- suggestions --------------------------------------------------------------------------

    @rpc_errors
    def GetNewSuggestion(
        self, request: pb.GetNewSuggestionRequest, context: grpc.ServicerContext
    ) -> pb.GetNewSuggestionResponse:
        name = validation.study_name(request.study, "study")
        worker = validation.worker_id(request.worker_id)
        wanted = validation.count(request.count)
        trials, done = self._run(context, lambda tx: self._suggest(tx, name, worker, wanted))
        response = pb.GetNewSuggestionResponse(trials=[converters.trial_to_proto(t) for t in trials])
        if done:
            response.study_done = True
        elif not trials:
            response.retry_after_seconds = self._settings.retry_after_seconds
        return response

    def _suggest(self, tx: Transaction, name: str, worker: str, wanted: int) -> tuple[list[Trial], bool]:
        study = tx.get_study(name, lock=True)
        if study.state is StudyState.DONE:
            return [], True
        now = self._clock()
        self._expire_leases(tx, name, lock=False)
        trials = tx.active_trials(name, worker)
        number = study.trial_count
        while len(trials) < wanted:
            proposal = self._propose(tx, study, number + 1)
            if proposal is None:
                break
            trials.append(tx.create_trial(name, proposal, worker, now))
            number += 1
        if trials:
            return trials, False
        if tx.has_active_trials(name):
            return [], False
        # Nothing is active, so nothing changes under the study lock any more, but the view may
        # predate the completion of the last active trial: decide once more before declaring done.
        proposal = self._propose(tx, study, number + 1)
        if proposal is not None:
            return [tx.create_trial(name, proposal, worker, now)], False
        tx.set_study_state(name, StudyState.DONE)
        log.info("study %s is done", name)
        return [], True

    @staticmethod
    def _propose(tx: Transaction, study: Study, number: int) -> TrialProposal | None:
        view = tx.population_view(study.name, study.config)
        return evolution.next_trial(study.config, view, evolution.decision_rng(study.config.algorithm.seed, number))

    # --- reports ------------------------------------------------------------------------------

    @rpc_errors
    def ReportMeasurement(
        self, request: pb.ReportMeasurementRequest, context: grpc.ServicerContext
    ) -> pb.ReportMeasurementResponse:
        trial_id = validation.trial_id(request.trial_id)
        worker = validation.worker_id(request.worker_id)
        if not request.HasField("measurement"):
            raise ValueError("measurement: must be set")
        measurement = converters.measurement_from_proto(request.measurement)
        stop = self._run_on_held_trial(context, lambda tx: self._report(tx, trial_id, worker, measurement))
        return pb.ReportMeasurementResponse(should_stop=stop)

    def _report(self, tx: Transaction, trial_id: int, worker: str, measurement: Measurement) -> bool:
        """A step already recorded is a repeat: it changes nothing."""
        now = self._clock()
        trial = self._renew(tx, trial_id, worker, now, new_step=measurement.step)
        config = trial.config
        validation.objective_metrics(config, measurement, "measurement")
        if not tx.add_measurement(trial_id, measurement, now) or trial.stop_requested:
            return trial.stop_requested
        if not config.algorithm.median_stopping.enabled:
            return False
        updated = tx.get_trial(trial_id)
        peers = tx.completed_trials(trial.study, *_peer_window(config, trial.generation))
        if early_stopping.should_stop(config, updated, peers):
            tx.request_stop([trial_id])
            log.info("trial %s: median stopping rule asks it to stop", trial_id)
            return True
        return False

    @rpc_errors
    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatResponse:
        trial_id = validation.trial_id(request.trial_id)
        worker = validation.worker_id(request.worker_id)

        def work(tx: Transaction) -> bool:
            return self._renew(tx, trial_id, worker, self._clock()).stop_requested

        return pb.HeartbeatResponse(should_stop=self._run_on_held_trial(context, work))

    @rpc_errors
    def CompleteTrial(self, request: pb.CompleteTrialRequest, context: grpc.ServicerContext) -> trial_pb2.Trial:
        trial_id = validation.trial_id(request.trial_id)
        worker = validation.worker_id(request.worker_id)
        final = (
            converters.measurement_from_proto(request.final_measurement, "final_measurement")
            if request.HasField("final_measurement")
            else None
        )
        reason = request.failure_reason
        trial = self._run_on_held_trial(context, lambda tx: self._complete(tx, trial_id, worker, final, reason))
        return converters.trial_to_proto(trial)

    def _complete(
        self, tx: Transaction, trial_id: int, worker: str, final: Measurement | None, reason: str
    ) -> Trial:
        now = self._clock()
        state = tx.renew_lease(trial_id, worker, self._lease_start(now), now)
        if state is None:
            trial = tx.get_trial(trial_id)
            if trial.worker_id == worker and self._is_repeat(trial, final, reason):
                return trial
            state = self._renew(tx, trial_id, worker, now)
        if reason:
            log.info("trial %s failed: %s", trial_id, reason)
            return tx.finish_trial(trial_id, TrialStatus.FAILED, None, reason, now)
        if final is not None:
            validation.objective_metrics(state.config, final, "final_measurement")
        message = "stopped early" if state.stop_requested else ""
        try:
            return tx.finish_trial(trial_id, TrialStatus.COMPLETED, final, message, now)
        except TrialStateError as e:  # the trial is ACTIVE and locked: it has no measurement
            raise PreconditionError(f"trial {trial_id} has no measurements; report one before completing it") from e

    @staticmethod
    def _is_repeat(trial: Trial, final: Measurement | None, reason: str) -> bool:
        """A retried CompleteTrial whose first attempt already took effect."""
        if reason:
            return trial.status is TrialStatus.FAILED and trial.status_message == reason
        if trial.status is not TrialStatus.COMPLETED or trial.final_measurement is None:
            return False
        if final is None:
            return True
        return final.step == trial.final_measurement.step and validation.same_metrics(
            final.metrics, trial.final_measurement.metrics
        )

    @rpc_errors
    def StopTrial(self, request: pb.StopTrialRequest, context: grpc.ServicerContext) -> trial_pb2.Trial:
        trial_id = validation.trial_id(request.trial_id)
        reason = request.reason or "stopped by request"

        def work(tx: Transaction) -> Trial:
            tx.get_study(tx.get_trial(trial_id, with_measurements=False).study, lock=True)
            trial = tx.get_trial(trial_id, lock=True)
            if request.worker_id and trial.worker_id != request.worker_id:
                raise PreconditionError(f"trial {trial_id} is held by worker {trial.worker_id!r}")
            if trial.status is TrialStatus.STOPPED:
                return trial
            if trial.status is not TrialStatus.ACTIVE:
                raise PreconditionError(f"trial {trial_id} is {trial.status.value} and cannot be stopped")
            return tx.finish_trial(trial_id, TrialStatus.STOPPED, None, reason, self._clock())

        return converters.trial_to_proto(self._run(context, work))

    @rpc_errors
    def GetEarlyStoppingTrials(
        self, request: pb.GetEarlyStoppingTrialsRequest, context: grpc.ServicerContext
    ) -> pb.GetEarlyStoppingTrialsResponse:
        name = validation.study_name(request.study, "study")

        def work(tx: Transaction) -> list[Trial]:
            return self._early_stopping(tx, name)

        trials = self._run(context, work)
        return pb.GetEarlyStoppingTrialsResponse(trials=[converters.trial_to_proto(t) for t in trials])

    def _early_stopping(self, tx: Transaction, name: str) -> list[Trial]:
        """The active trials that should stop. Peers are read once, for the union of the active
        trials' windows: a few generations, whatever the history."""
        config = tx.get_study(name).config
        active = tx.active_trials(name)
        if not config.algorithm.median_stopping.enabled or not active:
            return [t for t in active if t.stop_requested]
        windows = [_peer_window(config, t.generation) for t in active]
        peers = tx.completed_trials(name, min(w[0] for w in windows), max(w[1] for w in windows))
        stopping: list[Trial] = []
        for trial, (low, high) in zip(active, windows, strict=True):
            in_window = [p for p in peers if low <= p.generation <= high]
            if not trial.stop_requested and not early_stopping.should_stop(config, trial, in_window):
                continue
            stopping.append(trial)
        tx.request_stop([t.id for t in stopping if not t.stop_requested])
        return stopping

    # --- queries ------------------------------------------------------------------------------

    @rpc_errors
    def GetTrial(self, request: pb.GetTrialRequest, context: grpc.ServicerContext) -> trial_pb2.Trial:
        trial_id = validation.trial_id(request.trial_id)
        return converters.trial_to_proto(self._run(context, lambda tx: tx.get_trial(trial_id)))

    @rpc_errors
    def ListTrials(self, request: pb.ListTrialsRequest, context: grpc.ServicerContext) -> pb.ListTrialsResponse:
        name = validation.study_name(request.study, "study")
        statuses = [converters.status_from_proto(s, "statuses") for s in request.statuses]
        size = validation.page_size(request.page_size)
        after = validation.page_token(request.page_token)
        if request.has_generation and request.generation < 0:
            raise ValueError(f"generation: must be >= 0, got {request.generation}")
        generation = request.generation if request.has_generation else None
        with_measurements = not request.omit_measurements

        def work(tx: Transaction) -> list[Trial]:
            tx.get_study(name)
            return tx.list_trials(
                name, statuses=statuses, generation=generation, after_number=after,
                limit=size + 1, with_measurements=with_measurements,
            )

        trials = self._run(context, work)
        response = pb.ListTrialsResponse(
            trials=[converters.trial_to_proto(t, with_measurements=with_measurements) for t in trials[:size]]
        )
        if len(trials) > size:
            response.next_page_token = str(trials[size - 1].number)
        return response

