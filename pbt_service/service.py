"""The gRPC servicer: validate, run one transaction that calls the pure core, convert back.

Nothing here keeps state between calls: every decision is read from and written to the database
inside a single transaction, so any number of replicas on one database behave as one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import grpc
from pbt.v1 import pbt_service_pb2 as pb
from pbt.v1 import pbt_service_pb2_grpc, study_pb2, trial_pb2

from pbt_service import converters, validation
from pbt_service.core import early_stopping, evolution
from pbt_service.core.search_space import validate_config
from pbt_service.core.types import Measurement, StudyConfig, StudyState, Trial, TrialStatus
from pbt_service.grpc_errors import PreconditionError, rpc_errors
from pbt_service.store.base import Storage, Transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSettings:
    """`lease_seconds`: an active trial whose worker is silent this long is stopped and its
    reproduction handed back. `retry_after_seconds`: what a worker is told to wait when nothing
    can be suggested yet."""

    lease_seconds: float = 300.0
    retry_after_seconds: float = 1.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _held(trial: Trial, worker_id: str) -> None:
    """A trial accepts reports only while ACTIVE and only from the worker that holds it."""
    if trial.worker_id != worker_id:
        raise PreconditionError(f"trial {trial.id} is held by worker {trial.worker_id!r}, not {worker_id!r}")
    if trial.status is not TrialStatus.ACTIVE:
        detail = f": {trial.status_message}" if trial.status_message else ""
        raise PreconditionError(f"trial {trial.id} is {trial.status.value}{detail}")


def _peer_window(config: StudyConfig, generation: int) -> tuple[int, int]:
    return max(0, generation - config.algorithm.opponent_generations + 1), generation


class PbtServicer(pbt_service_pb2_grpc.PbtServiceServicer):
    """Implements `pbt.v1.PbtService` over a `Storage`."""

    def __init__(
        self,
        storage: Storage,
        settings: ServiceSettings = ServiceSettings(),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._storage = storage
        self._settings = settings
        self._clock = clock

    # --- studies ------------------------------------------------------------------------------

    @rpc_errors
    def CreateStudy(self, request: pb.CreateStudyRequest, context: grpc.ServicerContext) -> study_pb2.Study:
        name = validation.study_name(request.name)
        if not request.HasField("config"):
            raise ValueError("config: must be set")
        config = converters.study_config_from_proto(request.config)
        validate_config(config)
        now = self._clock()
        study = self._storage.run(lambda tx: tx.create_study(name, config, now))
        log.info("created study %s", name)
        return converters.study_to_proto(study)

    @rpc_errors
    def GetStudy(self, request: pb.GetStudyRequest, context: grpc.ServicerContext) -> study_pb2.Study:
        name = validation.study_name(request.name)
        return converters.study_to_proto(self._storage.run(lambda tx: tx.get_study(name)))

    @rpc_errors
    def ListStudies(self, request: pb.ListStudiesRequest, context: grpc.ServicerContext) -> pb.ListStudiesResponse:
        studies = self._storage.run(lambda tx: tx.list_studies())
        return pb.ListStudiesResponse(studies=[converters.study_to_proto(s) for s in studies])

    # --- suggestions --------------------------------------------------------------------------

    @rpc_errors
    def GetNewSuggestion(
        self, request: pb.GetNewSuggestionRequest, context: grpc.ServicerContext
    ) -> pb.GetNewSuggestionResponse:
        name = validation.study_name(request.study, "study")
        worker = validation.worker_id(request.worker_id)
        wanted = validation.count(request.count)
        trials, done = self._storage.run(lambda tx: self._suggest(tx, name, worker, wanted))
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
        expired = tx.expire_leases(name, now - timedelta(seconds=self._settings.lease_seconds), now)
        if expired:
            log.info("study %s: leases expired for trials %s", name, expired)
        trials = tx.active_trials(name, worker)
        number = study.trial_count
        while len(trials) < wanted:
            view = tx.population_view(name, study.config)
            number += 1
            proposal = evolution.next_trial(
                study.config, view, evolution.decision_rng(study.config.algorithm.seed, number)
            )
            if proposal is None:
                break
            trials.append(tx.create_trial(name, proposal, worker, now))
        if trials:
            return trials, False
        if tx.active_trials(name):
            return [], False
        tx.set_study_state(name, StudyState.DONE)
        log.info("study %s is done", name)
        return [], True

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
        stop = self._storage.run(lambda tx: self._report(tx, trial_id, worker, measurement))
        return pb.ReportMeasurementResponse(should_stop=stop)

    def _report(self, tx: Transaction, trial_id: int, worker: str, measurement: Measurement) -> bool:
        trial = tx.get_trial(trial_id, lock=True)
        _held(trial, worker)
        config = tx.get_study(trial.study).config
        validation.objective_metrics(config, measurement, "measurement")
        now = self._clock()
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
            trial = tx.get_trial(trial_id, lock=True)
            _held(trial, worker)
            tx.heartbeat(trial_id, self._clock())
            return trial.stop_requested

        return pb.HeartbeatResponse(should_stop=self._storage.run(work))

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
        trial = self._storage.run(lambda tx: self._complete(tx, trial_id, worker, final, reason))
        return converters.trial_to_proto(trial)

    def _complete(
        self, tx: Transaction, trial_id: int, worker: str, final: Measurement | None, reason: str
    ) -> Trial:
        trial = tx.get_trial(trial_id, lock=True)
        if trial.worker_id == worker and self._is_repeat(trial, final, reason):
            return trial
        _held(trial, worker)
        now = self._clock()
        if reason:
            log.info("trial %s failed: %s", trial_id, reason)
            return tx.finish_trial(trial_id, TrialStatus.FAILED, None, reason, now)
        config = tx.get_study(trial.study).config
        if final is not None:
            validation.objective_metrics(config, final, "final_measurement")
        elif not trial.measurements:
            raise PreconditionError(f"trial {trial_id} has no measurements; report one before completing it")
        message = "stopped early" if trial.stop_requested else ""
        return tx.finish_trial(trial_id, TrialStatus.COMPLETED, final, message, now)

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
            trial = tx.get_trial(trial_id, lock=True)
            if request.worker_id and trial.worker_id != request.worker_id:
                raise PreconditionError(f"trial {trial_id} is held by worker {trial.worker_id!r}")
            if trial.status is TrialStatus.STOPPED:
                return trial
            if trial.status is not TrialStatus.ACTIVE:
                raise PreconditionError(f"trial {trial_id} is {trial.status.value} and cannot be stopped")
            return tx.finish_trial(trial_id, TrialStatus.STOPPED, None, reason, self._clock())

        return converters.trial_to_proto(self._storage.run(work))

    @rpc_errors
    def GetEarlyStoppingTrials(
        self, request: pb.GetEarlyStoppingTrialsRequest, context: grpc.ServicerContext
    ) -> pb.GetEarlyStoppingTrialsResponse:
        name = validation.study_name(request.study, "study")

        def work(tx: Transaction) -> list[Trial]:
            config = tx.get_study(name).config
            stopping: list[Trial] = []
            for trial in tx.active_trials(name):
                if not trial.stop_requested:
                    peers = tx.completed_trials(name, *_peer_window(config, trial.generation))
                    if not early_stopping.should_stop(config, trial, peers):
                        continue
                    tx.request_stop([trial.id])
                stopping.append(trial)
            return stopping

        trials = self._storage.run(work)
        return pb.GetEarlyStoppingTrialsResponse(trials=[converters.trial_to_proto(t) for t in trials])

    # --- queries ------------------------------------------------------------------------------

    @rpc_errors
    def GetTrial(self, request: pb.GetTrialRequest, context: grpc.ServicerContext) -> trial_pb2.Trial:
        trial_id = validation.trial_id(request.trial_id)
        return converters.trial_to_proto(self._storage.run(lambda tx: tx.get_trial(trial_id)))

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

        trials = self._storage.run(work)
        response = pb.ListTrialsResponse(
            trials=[converters.trial_to_proto(t, with_measurements=with_measurements) for t in trials[:size]]
        )
        if len(trials) > size:
            response.next_page_token = str(trials[size - 1].number)
        return response

