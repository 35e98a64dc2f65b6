"""Training replay on the toy example through a real service: the best trial's schedule, trained
again from scratch, reaches the study's objective, and an ensemble of last-generation trials
trains each shared ancestor once."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from examples import toy
from pbt_service.core.lineage import ReplayPlan, replay_plan
from pbt_service.core.types import Trial, TrialStatus
from pbt_service.local import LocalService
from worker_client import PbtClient, TrialContext, Worker
from worker_client.replay import replay
from worker_client.results import ServiceSource, best

POPULATION, GENERATIONS = 4, 6


@dataclass(frozen=True)
class ToyStudy:
    best: Trial
    trials: dict[int, Trial]
    plan_of_best: ReplayPlan

    def q(self, trial_id: int) -> float:
        final = self.trials[trial_id].final_measurement
        assert final is not None
        return final.metrics["Q"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToyStudy]:
    folder = tmp_path_factory.mktemp("toy")
    with LocalService(f"sqlite:///{folder / 'toy.db'}") as service, PbtClient(service.address) as client:
        client.create_study("toy", toy.study_config(POPULATION, GENERATIONS, seed=5))
        ran = Worker(client, "toy", toy.train, toy.evaluate, worker_id="w", workdir=folder / "runs").run()
        assert ran == POPULATION * GENERATIONS
        winner = best(client, client.get_study("toy"))[0]
        # through the service, one GetTrial per trial
        plan = replay_plan([winner.id], ServiceSource(client, owned=False).get_trial)
        trials = {t.id: t for t in client.list_trials("toy")}
    assert all(t.status == TrialStatus.COMPLETED for t in trials.values())
    yield ToyStudy(winner, trials, plan)


def test_the_best_trial_replayed_from_scratch_reaches_the_same_q(study: ToyStudy, tmp_path: Path) -> None:
    results = replay(study.plan_of_best, toy.train, toy.evaluate, tmp_path / "replay")
    assert [r.trial_id for r in results][-1] == study.best.id
    assert results[-1].metrics["Q"] == pytest.approx(study.q(study.best.id), abs=1e-6)
    assert results[-1].step == study.best.final_measurement.step  # type: ignore[union-attr]
    assert study.q(study.best.id) > 1.2 - 2 * 0.9**2 + 0.1, "the study should have improved on the start"


def sharing_finals(study: ToyStudy) -> tuple[list[int], ReplayPlan]:
    """The three last-generation trials whose lineages share the most ancestors."""
    last = sorted(t.id for t in study.trials.values() if t.generation == GENERATIONS - 1)
    plans = [(list(ids), replay_plan(ids, study.trials.__getitem__)) for ids in itertools.combinations(last, 3)]
    return min(plans, key=lambda candidate: len(candidate[1].segments))


def test_an_ensemble_of_three_trains_each_shared_ancestor_once(study: ToyStudy, tmp_path: Path) -> None:
    finals, plan = sharing_finals(study)
    chains = {final: [s.trial_id for s in plan.chain(final)] for final in finals}
    shared = set.intersection(*(set(chain) for chain in chains.values()))
    union = set().union(*chains.values())
    assert shared, f"the lineages of {finals} should meet: {chains}"
    calls: Counter[int] = Counter()

    def counting(ctx: TrialContext) -> None:
        calls[ctx.trial_id] += 1
        toy.train(ctx)

    results = {r.trial_id: r for r in replay(plan, counting, toy.evaluate, tmp_path / "ensemble")}
    assert all(calls[ancestor] == 1 for ancestor in shared)
    assert set(calls) == union and sum(calls.values()) == len(union)
    assert sum(calls.values()) < sum(len(chain) for chain in chains.values())
    for final in finals:
        assert results[final].metrics["Q"] == pytest.approx(study.q(final), abs=1e-6)
