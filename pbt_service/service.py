"""The gRPC servicer: validate, convert, call the controller, convert back. Nothing else.

Application rules (leases, idempotency, lock order) live in `pbt_service.controller`; errors
become status codes in `pbt_service.grpc_errors`. Each call gives the database what is left of
the caller's deadline, less a margin for the reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from pbt_service import converters, limits, validation
from pbt_service.api.v1 import pbt_service_pb2 as pb
from pbt_service.api.v1 import pbt_service_pb2_grpc, study_pb2, trial_pb2
from pbt_service.controller import Controller
from pbt_service.core.errors import InvalidArgumentError
from pbt_service.grpc_errors import rpc_errors

__all__ = ["DEADLINE_MARGIN", "PbtServicer"]

M = TypeVar("M", bound=Message)
C = TypeVar("C", int, str)
DEADLINE_MARGIN = 0.9
"""The share of a call's remaining deadline the database may use, leaving time for the reply."""


def _timeout(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return remaining * DEADLINE_MARGIN if remaining is not None else None


def _fitting(items: Sequence[Message]) -> int:
    """How many of `items` (at least one) a list reply holds within `limits.MAX_REPLY_BYTES`: each
    costs its encoding plus the field's tag and length prefix."""
    used = 0
    for i, item in enumerate(items):
        used += item.ByteSize() + 6
        if used > limits.MAX_REPLY_BYTES and i > 0:
            return i
    return len(items)


def _page(
    items: list[M], cursors: Sequence[C], next_after: C | None, kind: str
) -> tuple[list[M], str]:
    """The items of a list page that fit the byte budget, and the token that continues after the
    last one kept (after `next_after` when all fit; "" at the end). `cursors[i]` is item i's."""
    fitting = _fitting(items)
    if fitting < len(items):
        return items[:fitting], validation.page_token_for(kind, cursors[fitting - 1])
    return items, "" if next_after is None else validation.page_token_for(kind, next_after)


class PbtServicer(pbt_service_pb2_grpc.PbtServiceServicer):
    """Implements `pbt_service.api.v1.PbtService` over a `Controller`."""

    def __init__(self, controller: Controller) -> None:
        self._app = controller

    # --- studies ---
    @rpc_errors
    def CreateStudy(self, request: pb.CreateStudyRequest, context: grpc.ServicerContext) -> study_pb2.Study:
        name = validation.study_name(request.name)
        if not request.HasField("config"):
            raise InvalidArgumentError("config: must be set")
        validation.config_size(request.config)
        config = converters.study_config_from_proto(request.config)
        return converters.study_to_proto(self._app.create_study(name, config, timeout_s=_timeout(context)))

    @rpc_errors
    def GetStudy(self, request: pb.GetStudyRequest, context: grpc.ServicerContext) -> study_pb2.Study:
        name = validation.study_name(request.name)
        return converters.study_to_proto(self._app.get_study(name, timeout_s=_timeout(context)))

    @rpc_errors
    def ListStudies(self, request: pb.ListStudiesRequest, context: grpc.ServicerContext) -> pb.ListStudiesResponse:
        size = validation.page_size(request.page_size)
        after = validation.studies_page_token(request.page_token)
        page = self._app.list_studies(after_name=after, page_size=size, timeout_s=_timeout(context))
        studies, token = _page(
            [converters.study_to_proto(s) for s in page.studies], [s.name for s in page.studies], page.next_after,
            "studies",
        )  # fmt: skip
        return pb.ListStudiesResponse(studies=studies, next_page_token=token)

    @rpc_errors
    def PauseStudy(self, request: pb.PauseStudyRequest, context: grpc.ServicerContext) -> study_pb2.Study:
        name = validation.study_name(request.name)
        return converters.study_to_proto(self._app.pause_study(name, timeout_s=_timeout(context)))

    @rpc_errors
    def ResumeStudy(self, request: pb.ResumeStudyRequest, context: grpc.ServicerContext) -> study_pb2.Study:
        name = validation.study_name(request.name)
        return converters.study_to_proto(self._app.resume_study(name, timeout_s=_timeout(context)))

    # --- checkpoints ---
    @rpc_errors
    def CollectCheckpoints(
        self, request: pb.CollectCheckpointsRequest, context: grpc.ServicerContext
    ) -> pb.CollectCheckpointsResponse:
        name = validation.study_name(request.study, "study")
        limit = validation.max_checkpoints(request.max_checkpoints)
        collection = self._app.collect_checkpoints(
            name, dry_run=request.dry_run, limit=limit, timeout_s=_timeout(context)
        )
        checkpoints = [
            pb.CollectableCheckpoint(path=c.path, trial_id=c.trial_id, step=c.step) for c in collection.checkpoints
        ]
        fitting = _fitting(checkpoints)
        return pb.CollectCheckpointsResponse(
            checkpoints=checkpoints[:fitting], roots=collection.roots, kept=collection.kept,
            truncated=collection.truncated or fitting < len(checkpoints),
        )  # fmt: skip

    @rpc_errors
    def ConfirmCheckpointsDeleted(
        self, request: pb.ConfirmCheckpointsDeletedRequest, context: grpc.ServicerContext
    ) -> pb.ConfirmCheckpointsDeletedResponse:
        name = validation.study_name(request.study, "study")
        paths = validation.checkpoint_paths(request.paths)
        confirmed = self._app.confirm_checkpoints_deleted(name, paths, timeout_s=_timeout(context))
        return pb.ConfirmCheckpointsDeletedResponse(confirmed=confirmed)

    # --- workers ---
    @rpc_errors
    def GetNewSuggestion(
        self, request: pb.GetNewSuggestionRequest, context: grpc.ServicerContext
    ) -> pb.GetNewSuggestionResponse:
        name = validation.study_name(request.study, "study")
        worker = validation.worker_id(request.worker_id)
        wanted = validation.count(request.count)
        suggestion = self._app.suggest(name, worker, wanted, timeout_s=_timeout(context))
        # Without measurements (a worker trains a held trial again from its warm start), so `count`
        # trials of bounded size fit in a reply.
        response = pb.GetNewSuggestionResponse(
            trials=[converters.trial_to_proto(t, with_measurements=False) for t in suggestion.trials]
        )
        if suggestion.study_done:
            response.study_done = True
        elif not suggestion.trials:
            response.retry_after_seconds = self._app.settings.retry_after_seconds
        response.study_paused = suggestion.study_paused
        return response

    @rpc_errors
    def ReportMeasurement(
        self, request: pb.ReportMeasurementRequest, context: grpc.ServicerContext
    ) -> pb.ReportMeasurementResponse:
        trial_id = validation.trial_id(request.trial_id)
        worker = validation.worker_id(request.worker_id)
        if not request.HasField("measurement"):
            raise InvalidArgumentError("measurement: must be set")
        measurement = validation.measurement(request.measurement)
        stop = self._app.report(trial_id, worker, measurement, timeout_s=_timeout(context))
        return pb.ReportMeasurementResponse(should_stop=stop)

    @rpc_errors
    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatResponse:
        trial_id = validation.trial_id(request.trial_id)
        worker = validation.worker_id(request.worker_id)
        return pb.HeartbeatResponse(should_stop=self._app.heartbeat(trial_id, worker, timeout_s=_timeout(context)))

    @rpc_errors
    def CompleteTrial(self, request: pb.CompleteTrialRequest, context: grpc.ServicerContext) -> trial_pb2.Trial:
        trial_id = validation.trial_id(request.trial_id)
        worker = validation.worker_id(request.worker_id)
        final = (
            validation.measurement(request.final_measurement, "final_measurement")
            if request.HasField("final_measurement")
            else None
        )
        reason = validation.text(request.failure_reason, "failure_reason")
        trial = self._app.complete(trial_id, worker, final, reason, timeout_s=_timeout(context))
        return converters.trial_to_proto(trial)

    @rpc_errors
    def StopTrial(self, request: pb.StopTrialRequest, context: grpc.ServicerContext) -> trial_pb2.Trial:
        trial_id = validation.trial_id(request.trial_id)
        worker = validation.optional_worker_id(request.worker_id)
        reason = validation.text(request.reason, "reason")
        return converters.trial_to_proto(self._app.stop_trial(trial_id, worker, reason, timeout_s=_timeout(context)))

    @rpc_errors
    def GetEarlyStoppingTrials(
        self, request: pb.GetEarlyStoppingTrialsRequest, context: grpc.ServicerContext
    ) -> pb.GetEarlyStoppingTrialsResponse:
        name = validation.study_name(request.study, "study")
        trials = self._app.early_stopping_trials(name, timeout_s=_timeout(context))
        # All of them are marked; the reply names as many as fit (their workers hear should_stop
        # on their next report or heartbeat either way).
        replies = [converters.trial_to_proto(t, with_measurements=False) for t in trials]
        return pb.GetEarlyStoppingTrialsResponse(trials=replies[: _fitting(replies)])

    # --- queries ---
    @rpc_errors
    def GetTrial(self, request: pb.GetTrialRequest, context: grpc.ServicerContext) -> trial_pb2.Trial:
        trial_id = validation.trial_id(request.trial_id)
        return converters.trial_to_proto(self._app.get_trial(trial_id, timeout_s=_timeout(context)))

    @rpc_errors
    def ListTrials(self, request: pb.ListTrialsRequest, context: grpc.ServicerContext) -> pb.ListTrialsResponse:
        name = validation.study_name(request.study, "study")
        statuses = [converters.status_from_proto(s, "statuses") for s in request.statuses]
        size = validation.page_size(request.page_size)
        after = validation.trials_page_token(request.page_token)
        generation = validation.generation(request.generation) if request.HasField("generation") else None
        with_measurements = not request.omit_measurements
        page = self._app.list_trials(
            name, statuses=statuses, generation=generation, after_number=after, page_size=size,
            with_measurements=with_measurements, timeout_s=_timeout(context),
        )  # fmt: skip
        trials, token = _page(
            [converters.trial_to_proto(t, with_measurements=with_measurements) for t in page.trials],
            [t.number for t in page.trials], page.next_after, "trials",
        )  # fmt: skip
        return pb.ListTrialsResponse(trials=trials, next_page_token=token)
