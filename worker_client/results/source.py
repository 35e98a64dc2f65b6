"""Where results are read from: the service over gRPC, or (read-only) a database URL.

Both raise the same errors, so every caller — the `pbt-results` command, the Python API, the
dashboard — handles one set: `NotFoundError` for an unknown study or trial, `AccessDenied` when
the service refuses the token, `SourceUnavailable` when it cannot be reached.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

import grpc

from pbt_service.core.errors import NotFoundError, PbtError
from pbt_service.core.types import LineageRecord, Study, Trial, TrialStatus
from worker_client.client import PbtClient
from worker_client.settings import ClientSettings, SettingsError, add_client_arguments, client_settings

R = TypeVar("R")
DATABASE_SCHEMES = ("sqlite:", "postgresql:", "postgresql+psycopg2:", "postgres:")


class AccessDenied(PbtError):
    """The service refused the credentials (UNAUTHENTICATED or PERMISSION_DENIED)."""


class SourceUnavailable(PbtError):
    """The service or database could not be reached, or failed; the message says which and why."""


class ResultsSource(Protocol):
    """The four reads every query is built from."""

    def list_studies(self) -> list[Study]: ...

    def get_study(self, name: str) -> Study: ...

    def get_trial(self, trial_id: int) -> Trial: ...

    def list_trials(
        self, study: str, *, statuses: Sequence[TrialStatus] = (), generation: int | None = None,
        with_measurements: bool = True,
    ) -> list[Trial]: ...

    def close(self) -> None: ...


class ServiceSource:
    """Reads through a `PbtClient`, translating gRPC statuses into this module's errors."""

    def __init__(self, client: PbtClient, *, owned: bool = True) -> None:
        self.client = client
        self._owned = owned

    def close(self) -> None:
        if self._owned:
            self.client.close()

    def list_studies(self) -> list[Study]:
        return self._call(self.client.list_studies)

    def get_study(self, name: str) -> Study:
        return self._call(lambda: self.client.get_study(name), f"study {name!r}")

    def get_trial(self, trial_id: int) -> Trial:
        return self._call(lambda: self.client.get_trial(trial_id), f"trial {trial_id}")

    def list_trials(
        self, study: str, *, statuses: Sequence[TrialStatus] = (), generation: int | None = None,
        with_measurements: bool = True,
    ) -> list[Trial]:
        return self._call(
            lambda: self.client.list_trials(study, statuses=statuses, generation=generation,
                                            with_measurements=with_measurements),
            f"study {study!r}",
        )

    def _call(self, read: Callable[[], R], what: str = "") -> R:
        try:
            return read()
        except grpc.RpcError as error:
            code, details = error.code(), error.details()
            if code == grpc.StatusCode.NOT_FOUND:
                raise NotFoundError(f"{what or 'it'} not found") from None
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise AccessDenied(
                    f"the service at {self.client.address} refused the token ({code.name}: {details}); "
                    "give the right one with --token or PBT_AUTH_TOKEN"
                ) from None
            raise SourceUnavailable(f"service at {self.client.address}: {code.name}: {details}") from None


class DatabaseSource:
    """Reads a study database directly and read-only (needs the `server` extra's SQLAlchemy)."""

    def __init__(self, url: str) -> None:
        try:
            from pbt_service.store.read_only import ReadOnlyDatabase
        except ImportError as error:
            raise ImportError(
                f"reading a database URL needs SQLAlchemy ({error.name} is missing): "
                "pip install 'pbt-service[server]'"
            ) from None
        self._db = self._call(lambda: ReadOnlyDatabase(url))

    def close(self) -> None:
        self._db.close()

    def list_studies(self) -> list[Study]:
        return self._call(self._db.list_studies)

    def get_study(self, name: str) -> Study:
        return self._call(lambda: self._db.get_study(name))

    def get_trial(self, trial_id: int) -> Trial:
        return _public(self._call(lambda: self._db.get_trial(trial_id)))

    def list_trials(
        self, study: str, *, statuses: Sequence[TrialStatus] = (), generation: int | None = None,
        with_measurements: bool = True,
    ) -> list[Trial]:
        trials = self._call(lambda: self._db.list_trials(study, statuses=statuses, generation=generation,
                                                         with_measurements=with_measurements))
        return [_public(t) for t in trials]

    def _call(self, read: Callable[[], R]) -> R:
        try:
            return read()
        except NotFoundError:
            raise
        except PbtError as error:  # the store's DatabaseConfigError and UnavailableError
            raise SourceUnavailable(str(error)) from None


def _public(trial: Trial) -> Trial:
    """The trial as the service shows it: the selection bookkeeping it keeps for itself
    (`Trial.lineage`, never on the wire) left out, so both sources give equal trials."""
    return replace(trial, lineage=LineageRecord())


def is_database_url(target: str) -> bool:
    return target.startswith(DATABASE_SCHEMES)


def open_source(target: str | ClientSettings | PbtClient) -> ResultsSource:
    """A source for a service address, `ClientSettings`, an open `PbtClient` (left open on close)
    or a database URL (`sqlite:///runs/pbt.db`, `postgresql://user@host/db`)."""
    if isinstance(target, PbtClient):
        return ServiceSource(target, owned=False)
    if isinstance(target, str) and is_database_url(target):
        return DatabaseSource(target)
    return ServiceSource(PbtClient(target))


def add_source_arguments(parser: argparse.ArgumentParser, *, default_service: str, retry_seconds: float) -> None:
    """The connection flags every results reader takes (`pbt-results`, `pbt-dashboard`): the
    client settings of every command, and `--database-url` to read a database instead."""
    add_client_arguments(parser.add_argument_group(f"service (default {default_service})"),
                         retry_seconds=retry_seconds)
    parser.add_argument("--database-url", metavar="URL",
                        help="read a study database directly and read-only instead of asking the service "
                        "(sqlite:///PATH or postgresql://USER@HOST/DB; needs the server extra's SQLAlchemy)")


def source_settings(
    parser: argparse.ArgumentParser, args: argparse.Namespace, *, default_service: str, retry_seconds: float
) -> ClientSettings | None:
    """The client settings, or None when `--database-url` is given instead. A bad combination or
    value ends the command through `parser.error` (exit 2) naming the flag."""
    if args.database_url is not None:
        if args.service is not None:
            parser.error("--database-url and --service: give one of them")
        if not is_database_url(args.database_url):
            parser.error(f"--database-url: not a database URL (sqlite:///PATH or postgresql://...): "
                         f"{args.database_url}")
        return None
    try:
        return client_settings(args, default_address=default_service, retry_seconds=retry_seconds)
    except SettingsError as error:
        parser.error(str(error))
