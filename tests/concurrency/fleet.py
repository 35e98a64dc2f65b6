"""A fleet of simulated workers (threads calling `PbtClient` directly, trials that do no work) with
the faults of a preemptible cluster: replies lost (every call may be repeated, through any
replica), trials that fail, workers preempted (StopTrial) and workers that vanish mid-trial."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from pbt_service.core.types import Measurement, Trial, TrialStatus
from tests.concurrency.invariants import Acked
from worker_client import PbtClient

FAILURE = "simulated failure"


@dataclass(frozen=True)
class Faults:
    """Probabilities: `repeat` per call; the others per trial, exclusive."""

    repeat: float = 0.0
    fail: float = 0.0
    stop: float = 0.0
    vanish: float = 0.0


@dataclass
class FleetLog:
    acked: list[Acked] = field(default_factory=list)
    vanished: list[tuple[int, str]] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    ended: list[Trial] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def score(trial: Trial, step: int) -> float:
    return -((math.log10(float(trial.hparams["lr"])) + 2.0) ** 2) + 0.01 * step + 0.001 * trial.number


class SimulatedWorker:
    def __init__(self, index: int, addresses: Sequence[str], study: str, faults: Faults, log: FleetLog,
                 retry_seconds: float, seed: int) -> None:  # fmt: skip
        self.rng = random.Random(seed * 7919 + index)
        self.clients = [PbtClient(a, timeout_seconds=30, retry_seconds=retry_seconds) for a in addresses]
        self.index = index
        self.worker = f"w{index}"
        self.study = study
        self.faults = faults
        self.log = log

    def client(self) -> PbtClient:
        """Any replica will do: the service keeps nothing in memory."""
        return self.clients[self.rng.randrange(len(self.clients))]

    def repeat(self) -> bool:
        return self.rng.random() < self.faults.repeat

    def run(self, deadline: float) -> None:
        try:
            while time.monotonic() < deadline:
                suggestion = self.client().get_new_suggestion(self.study, self.worker)
                if suggestion.study_done:
                    return
                if not suggestion.trials:
                    time.sleep(suggestion.retry_after_seconds)
                    continue
                trial = suggestion.trials[0]
                if self.repeat():
                    again = self.client().get_new_suggestion(self.study, self.worker)
                    assert [t.id for t in again.trials] == [trial.id], (trial.id, again)
                try:
                    self.train(trial)
                except grpc.RpcError as error:  # its lease ran out under load: the service moved on
                    if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                        raise
                    with self.log.lock:
                        self.log.lost.append(trial.id)
            raise AssertionError(f"{self.worker}: the study did not finish in time")
        except BaseException as error:  # reported by the test
            with self.log.lock:
                self.log.errors.append(error)
        finally:
            for client in self.clients:
                client.close()

    def train(self, trial: Trial) -> None:
        fate = self.rng.random()
        f = self.faults
        if fate < f.vanish:
            with self.log.lock:
                self.log.vanished.append((trial.id, self.worker))
            self.worker = f"w{self.index}-after-{trial.id}"  # the machine is replaced
            return
        for step in (1, 2):
            measurement = Measurement(step, {"score": score(trial, step)}, checkpoint_path=f"/c/{trial.id}/{step}")
            for _ in range(1 + self.repeat()):
                self.client().report_measurement(trial.id, self.worker, measurement)
            with self.log.lock:
                self.log.acked.append(Acked(trial.id, step, measurement.metrics["score"]))
        ended: list[Trial] = []
        for _ in range(1 + self.repeat()):
            if fate < f.vanish + f.fail:
                ended.append(self.client().complete_trial(trial.id, self.worker, failure_reason=FAILURE))
            elif fate < f.vanish + f.fail + f.stop:
                ended.append(self.client().stop_trial(trial.id, "preempted", self.worker))
            else:
                ended.append(self.client().complete_trial(trial.id, self.worker))
        assert len({(t.status, t.end_time) for t in ended}) == 1, ended  # a repeat changed nothing
        with self.log.lock:
            self.log.ended.append(ended[0])


def run_fleet(addresses: Sequence[str], study: str, workers: int, faults: Faults, *, seed: int = 0,
              retry_seconds: float = 60.0, timeout: float = 90.0) -> FleetLog:  # fmt: skip
    """Runs `workers` simulated workers until the study is done; raises what any of them raised."""
    log = FleetLog()
    deadline = time.monotonic() + timeout
    fleet = [SimulatedWorker(i, addresses, study, faults, log, retry_seconds, seed) for i in range(workers)]
    threads = [threading.Thread(target=w.run, args=(deadline,), name=w.worker) for w in fleet]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if log.errors:
        raise log.errors[0]
    return log


def assert_vanished_trials_expired(addresses: Sequence[str], log: FleetLog) -> None:
    """Each vanished worker's trial was stopped by its lease, and a late report from that worker is
    refused with FAILED_PRECONDITION and changes nothing."""
    with PbtClient(addresses[0], retry_seconds=30) as client:
        for trial_id, worker in log.vanished:
            before = client.get_trial(trial_id)
            assert (before.status, before.status_message) == (TrialStatus.STOPPED, "lease expired"), before
            try:
                client.report_measurement(trial_id, worker, Measurement(99, {"score": 1.0}))
                raise AssertionError(f"a late report on trial {trial_id} was accepted")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
            assert client.get_trial(trial_id) == before
