"""A typed client over the gRPC stub: domain objects in and out, a deadline on every call, and
retries with backoff and jitter on UNAVAILABLE (every call of this API is safe to repeat: the
service makes suggestions, reports and completions idempotent)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc

from pbt_service import converters
from pbt_service.api.v1 import pbt_service_pb2 as pb
from pbt_service.api.v1 import pbt_service_pb2_grpc
from pbt_service.core.garbage_collection import CheckpointRef, Collection
from pbt_service.core.types import Measurement, Study, StudyConfig, Trial, TrialStatus
from worker_client.settings import ClientSettings

log = logging.getLogger(__name__)
R = TypeVar("R")


class _Page(Protocol):
    """A reply of a paged list call."""

    next_page_token: str


P = TypeVar("P", bound=_Page)
RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)
MAX_BACKOFF_SECONDS = 2.0
CHANNEL_OPTIONS = (
    # gRPC's own reconnect backoff grows to 120 s by default; keep it short so a restarted service
    # is found again within about a second.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


def _open_channel(settings: ClientSettings) -> grpc.Channel:
    """A TLS channel when the settings ask for one (root certificate, client pair, or the system's
    roots), a plaintext one otherwise."""
    if not settings.uses_tls:
        return grpc.insecure_channel(settings.address, options=CHANNEL_OPTIONS)

    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path is not None else None

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(settings.tls_root_certificates),
        private_key=read(settings.tls_client_key),
        certificate_chain=read(settings.tls_client_certificate),
    )
    return grpc.secure_channel(settings.address, credentials, options=CHANNEL_OPTIONS)


@dataclass(frozen=True)
class Suggestion:
    """The reply to GetNewSuggestion: trials to train, or a wait, or the end of the study."""

    trials: tuple[Trial, ...]
    retry_after_seconds: float
    study_done: bool
    study_paused: bool = False


class PbtClient:
    """Talks to one PBT service address.

    Example:
        client = PbtClient("localhost:50051")                 # or PbtClient(ClientSettings(...))
        client.create_study("demo", config, exist_ok=True)
        best = client.list_trials("demo", statuses=[TrialStatus.COMPLETED])
    """

    def __init__(
        self,
        service: str | ClientSettings,
        *,
        timeout_seconds: float | None = None,
        retry_seconds: float | None = None,
        token: str | None = None,
    ) -> None:
        """`service` is a `ClientSettings` (what the commands build from flags and `PBT_*`
        variables) or an address; the keywords override the matching settings. Raises
        SettingsError for impossible values and OSError for an unreadable TLS file."""
        settings = service if isinstance(service, ClientSettings) else ClientSettings(address=service)
        overrides: dict[str, Any] = {}
        if timeout_seconds is not None:
            overrides["deadline_seconds"] = timeout_seconds
        if retry_seconds is not None:
            overrides["retry_seconds"] = retry_seconds
        if token is not None:
            overrides["token"] = token
        self.settings = replace(settings, **overrides) if overrides else settings
        self.address = self.settings.address
        self._timeout = self.settings.deadline_seconds
        self._retry_seconds = self.settings.retry_seconds
        self._metadata = (("authorization", f"Bearer {self.settings.token}"),) if self.settings.token else ()
        self._channel = _open_channel(self.settings)
        self._stub = pbt_service_pb2_grpc.PbtServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> PbtClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def retry_seconds(self) -> float:
        return self._retry_seconds

    def _call(self, method: Callable[..., R], request: object) -> R:
        """Calls with a deadline; retries UNAVAILABLE with exponential backoff and full jitter for
        up to `retry_seconds`, then raises the last error. A worker thus rides out a restart of
        the service: every call of this API is safe to repeat."""
        start = time.monotonic()
        delay = 0.05
        failures = 0
        while True:
            try:
                reply = method(request, timeout=self._timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                waited = time.monotonic() - start
                if error.code() not in RETRYABLE or waited >= self._retry_seconds:
                    if failures:
                        log.error("service at %s unreachable for %.1fs; giving up", self.address, waited)
                    raise
                if failures == 0:
                    log.warning(
                        "service at %s unreachable (%s); retrying for up to %.0fs",
                        self.address, error.details(), self._retry_seconds,
                    )
                failures += 1
                time.sleep(random.uniform(0, min(delay, self._retry_seconds - waited)))
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
                continue
            if failures:
                log.warning("service at %s reachable again after %.1fs", self.address,
                            time.monotonic() - start)
            return reply

    # --- studies ---

    def create_study(self, name: str, config: StudyConfig, *, exist_ok: bool = False) -> Study:
        """Creates a study; with exist_ok, returns the existing one of that name instead. A worker
        token may not create studies (PERMISSION_DENIED): with exist_ok, a study that an admin
        created already is returned all the same, so workers can run the same code as admins."""
        request = pb.CreateStudyRequest(name=name, config=converters.study_config_to_proto(config))
        try:
            return converters.study_from_proto(self._call(self._stub.CreateStudy, request))
        except grpc.RpcError as error:
            if exist_ok and error.code() == grpc.StatusCode.ALREADY_EXISTS:
                return self.get_study(name)
            if exist_ok and error.code() == grpc.StatusCode.PERMISSION_DENIED:
                try:
                    return self.get_study(name)
                except grpc.RpcError:
                    raise error from None
            raise

    def get_study(self, name: str) -> Study:
        return converters.study_from_proto(self._call(self._stub.GetStudy, pb.GetStudyRequest(name=name)))

    def list_studies(self) -> list[Study]:
        """Every study, by name (follows every page)."""
        replies = self._pages(self._stub.ListStudies, pb.ListStudiesRequest())
        return [converters.study_from_proto(s) for reply in replies for s in reply.studies]

    def pause_study(self, name: str) -> Study:
        """No new trials until `resume_study`; active ones may finish. FAILED_PRECONDITION when done."""
        return converters.study_from_proto(self._call(self._stub.PauseStudy, pb.PauseStudyRequest(name=name)))

    def resume_study(self, name: str) -> Study:
        return converters.study_from_proto(self._call(self._stub.ResumeStudy, pb.ResumeStudyRequest(name=name)))

    # --- checkpoint collection ---

    def collect_checkpoints(self, study: str, *, dry_run: bool = False, max_checkpoints: int = 0) -> Collection:
        """The checkpoints the service decided (now or before) that no trial can need; with
        `dry_run` the service decides and records nothing. Delete them, then confirm."""
        request = pb.CollectCheckpointsRequest(study=study, dry_run=dry_run, max_checkpoints=max_checkpoints)
        reply = self._call(self._stub.CollectCheckpoints, request)
        return Collection(
            checkpoints=tuple(CheckpointRef(c.path, c.trial_id, c.step) for c in reply.checkpoints),
            roots=tuple(reply.roots), kept=reply.kept, truncated=reply.truncated,
        )  # fmt: skip

    def confirm_checkpoints_deleted(self, study: str, paths: Sequence[str]) -> int:
        """Records that these collected checkpoints are gone; returns how many changed state."""
        request = pb.ConfirmCheckpointsDeletedRequest(study=study, paths=list(paths))
        return int(self._call(self._stub.ConfirmCheckpointsDeleted, request).confirmed)

    # --- the worker's calls ---

    def get_new_suggestion(self, study: str, worker_id: str, count: int = 1) -> Suggestion:
        request = pb.GetNewSuggestionRequest(study=study, worker_id=worker_id, count=count)
        reply = self._call(self._stub.GetNewSuggestion, request)
        return Suggestion(
            trials=tuple(converters.trial_from_proto(t) for t in reply.trials),
            retry_after_seconds=reply.retry_after_seconds,
            study_done=reply.study_done,
            study_paused=reply.study_paused,
        )

    def report_measurement(self, trial_id: int, worker_id: str, measurement: Measurement) -> bool:
        """Returns True when the service asks the trial to stop early."""
        request = pb.ReportMeasurementRequest(
            trial_id=trial_id, worker_id=worker_id, measurement=converters.measurement_to_proto(measurement)
        )
        return bool(self._call(self._stub.ReportMeasurement, request).should_stop)

    def heartbeat(self, trial_id: int, worker_id: str) -> bool:
        """Renews the lease; returns True when the trial should stop early."""
        request = pb.HeartbeatRequest(trial_id=trial_id, worker_id=worker_id)
        return bool(self._call(self._stub.Heartbeat, request).should_stop)

    def complete_trial(
        self,
        trial_id: int,
        worker_id: str,
        final_measurement: Measurement | None = None,
        failure_reason: str = "",
    ) -> Trial:
        request = pb.CompleteTrialRequest(
            trial_id=trial_id, worker_id=worker_id, failure_reason=failure_reason
        )
        if final_measurement is not None:
            request.final_measurement.CopyFrom(converters.measurement_to_proto(final_measurement))
        return converters.trial_from_proto(self._call(self._stub.CompleteTrial, request))

    def stop_trial(self, trial_id: int, reason: str = "", worker_id: str = "") -> Trial:
        request = pb.StopTrialRequest(trial_id=trial_id, reason=reason, worker_id=worker_id)
        return converters.trial_from_proto(self._call(self._stub.StopTrial, request))

    def get_early_stopping_trials(self, study: str) -> list[Trial]:
        reply = self._call(self._stub.GetEarlyStoppingTrials, pb.GetEarlyStoppingTrialsRequest(study=study))
        return [converters.trial_from_proto(t) for t in reply.trials]

    # --- queries ---

    def get_trial(self, trial_id: int) -> Trial:
        reply = self._call(self._stub.GetTrial, pb.GetTrialRequest(trial_id=trial_id))
        return converters.trial_from_proto(reply)

    def list_trials(
        self,
        study: str,
        *,
        statuses: Sequence[TrialStatus] = (),
        generation: int | None = None,
        with_measurements: bool = True,
        page_size: int = 500,
    ) -> list[Trial]:
        """All matching trials in creation order (follows every page)."""
        request = pb.ListTrialsRequest(
            study=study,
            statuses=[converters.trial_status_to_proto(s) for s in statuses],
            generation=generation,
            page_size=page_size,
            omit_measurements=not with_measurements,
        )
        replies = self._pages(self._stub.ListTrials, request)
        return [converters.trial_from_proto(t) for reply in replies for t in reply.trials]

    def _pages(self, method: Callable[..., P], request: Any) -> Iterator[P]:
        """Every reply of a paged list call, following `next_page_token` to the end."""
        while True:
            reply = self._call(method, request)
            yield reply
            if not reply.next_page_token:
                return
            request.page_token = reply.next_page_token
