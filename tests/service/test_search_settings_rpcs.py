"""The search settings over real gRPC: refused bad values, a faithful round trip, and small
studies run to the end by worker threads under each selection and explore strategy."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
import pytest

from pbt_service import converters
from pbt_service.api.v1 import pbt_service_pb2 as pb
from pbt_service.api.v1 import study_pb2
from pbt_service.core.types import (
    AlgorithmConfig,
    ExploreConfig,
    ExploreStrategy,
    Goal,
    Objective,
    OpponentStrategy,
    ParameterSpec,
    ParameterType,
    Scale,
    SelectionConfig,
    SelectionScore,
    SelectionStrategy,
    StudyConfig,
    StudyState,
    Trial,
    TrialStatus,
)
from pbt_service.server import RunningServer
from tests.service.conftest import simple_config
from worker_client import PbtClient, run_workers
from worker_client.atomic import write_bytes_atomically
from worker_client.context import TrialContext, checkpoint_step, step_of_checkpoint

POPULATION, GENERATIONS, S = 4, 5, 3
LR = ParameterSpec("lr", ParameterType.FLOAT, low=1e-4, high=1.0, scale=Scale.LOG)
WIDTH = ParameterSpec("width", ParameterType.INTEGER, low=1, high=8)
OPT = ParameterSpec("opt", ParameterType.CATEGORICAL, values=("sgd", "adam"))
SEED = ParameterSpec("seed", ParameterType.FLOAT, low=0.0, high=1.0, frozen=True)
FACTORS = (0.8, 1.2)


# --- refused settings ----------------------------------------------------------------------------

Mutation = Callable[[study_pb2.StudyConfig], object]


def _only_categories(c: study_pb2.StudyConfig) -> None:
    c.ClearField("parameters")
    c.parameters.add(name="opt", categorical=study_pb2.CategoricalValues(values=["sgd", "adam"]))
    c.algorithm.explore.strategy = study_pb2.EXPLORE_PB2


BAD_SETTINGS: dict[str, tuple[Mutation, str]] = {
    "quantile above 0.5": (
        lambda c: setattr(c.algorithm.selection, "truncation_quantile", 0.75),
        "config.algorithm.selection.truncation_quantile",
    ),
    "quantile set to 0": (
        lambda c: setattr(c.algorithm.selection, "truncation_quantile", 0.0),
        "config.algorithm.selection.truncation_quantile",
    ),
    "score window 0": (
        lambda c: setattr(c.algorithm.selection, "score_window", 0),
        "config.algorithm.selection.score_window",
    ),
    "score window 17": (
        lambda c: setattr(c.algorithm.selection, "score_window", 17),
        "config.algorithm.selection.score_window",
    ),
    "ready generations 0": (
        lambda c: setattr(c.algorithm.selection, "ready_generations", 0),
        "config.algorithm.selection.ready_generations",
    ),
    "negative burn-in": (
        lambda c: setattr(c.algorithm.selection, "burn_in_steps", -1),
        "config.algorithm.selection.burn_in_steps",
    ),
    "negative ready steps": (
        lambda c: setattr(c.algorithm.selection, "ready_steps", -10),
        "config.algorithm.selection.ready_steps",
    ),
    "unknown selection strategy": (
        lambda c: setattr(c.algorithm.selection, "strategy", 99),
        "config.algorithm.selection.strategy",
    ),
    "negative rejuvenation": (
        lambda c: setattr(c.algorithm, "rejuvenate_after_generations", -1),
        "config.algorithm.rejuvenate_after_generations",
    ),
    "resample probability 0": (
        lambda c: setattr(c.algorithm.explore, "resample_probability", 0.0),
        "config.algorithm.explore.resample_probability",
    ),
    "resample probability above 1": (
        lambda c: setattr(c.algorithm.explore, "resample_probability", 1.5),
        "config.algorithm.explore.resample_probability",
    ),
    "pb2 with 2 points": (
        lambda c: setattr(c.algorithm.explore, "pb2_max_points", 2),
        "config.algorithm.explore.pb2_max_points",
    ),
    "pb2 without a number to tune": (_only_categories, "config.algorithm.explore.strategy"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_a_bad_search_setting_is_invalid_argument_and_creates_nothing(client: PbtClient, case: str) -> None:
    mutate, field_path = BAD_SETTINGS[case]
    config = converters.study_config_to_proto(simple_config())
    mutate(config)
    with pytest.raises(grpc.RpcError) as error:
        client._stub.CreateStudy(pb.CreateStudyRequest(name="bad", config=config))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.value.details() or ""
    assert details.startswith(f"{field_path}: "), details
    assert client.list_studies() == []


# --- round trip ----------------------------------------------------------------------------------

EVERY_SETTING = AlgorithmConfig(
    population_size=5,
    selection=SelectionConfig(
        strategy=SelectionStrategy.TRUNCATION,
        truncation_quantile=0.4,
        opponents=OpponentStrategy.ANY,
        score=SelectionScore.IMPROVEMENT,
        score_window=7,
        burn_in_steps=123,
        ready_steps=45,
        ready_generations=3,
    ),
    explore=ExploreConfig(strategy=ExploreStrategy.PB2, resample_probability=0.6, pb2_max_points=17),
    rejuvenate_after_generations=4,
)


def test_every_non_default_search_setting_reads_back_equal(client: PbtClient) -> None:
    defaults = AlgorithmConfig(population_size=5)
    for name in ("selection", "explore", "rejuvenate_after_generations"):
        assert getattr(EVERY_SETTING, name) != getattr(defaults, name)
    for f in SelectionConfig.__dataclass_fields__:
        assert getattr(EVERY_SETTING.selection, f) != getattr(SelectionConfig(), f), f
    for f in ExploreConfig.__dataclass_fields__:
        assert getattr(EVERY_SETTING.explore, f) != getattr(ExploreConfig(), f), f
    config = StudyConfig((LR, WIDTH, OPT), (Objective("score"),), algorithm=EVERY_SETTING)
    created = client.create_study("every", config)
    assert created.config == config
    assert client.get_study("every").config == config
    [listed] = client.list_studies()
    assert listed.config.algorithm == EVERY_SETTING


def test_unset_search_settings_read_back_as_the_defaults(client: PbtClient) -> None:
    client.create_study("plain", simple_config())
    algorithm = client.get_study("plain").config.algorithm
    assert (algorithm.selection, algorithm.explore, algorithm.rejuvenate_after_generations) == (
        SelectionConfig(),
        ExploreConfig(),
        0,
    )


# --- small studies end to end --------------------------------------------------------------------


def rate(lr: float) -> float:
    """Score gained per step: best at lr = 1e-2, negative outside [1e-3, 1e-1] (stale lineages)."""
    return 1.0 - (math.log10(lr) + 2.0) ** 2


def train(ctx: TrialContext) -> None:
    """Continues the parent's score for `ctx.steps` steps at the rate its learning rate gives."""
    start = step_of_checkpoint(ctx.warm_start_checkpoint_path)
    score = 0.0
    if ctx.warm_start_checkpoint_path:
        score = json.loads(Path(ctx.warm_start_checkpoint_path).read_text())["score"]
    score += ctx.steps * 0.01 * rate(float(ctx.hparams["lr"])) + 0.001 * int(ctx.hparams["width"])
    write_bytes_atomically(ctx.checkpoint_path(start + ctx.steps), json.dumps({"score": score}).encode())


def evaluate(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
    return {"score": float(json.loads(checkpoint.read_text())["score"])}


@dataclass(frozen=True)
class Scenario:
    """A study's search settings. One worker makes the run reproducible (the seed decides every
    trial), for the cases that assert a rare event happened."""

    selection: SelectionConfig = field(default_factory=SelectionConfig)
    explore: ExploreConfig = field(default_factory=ExploreConfig)
    rejuvenate: int = 0
    workers: int = 2


GREEDY = SelectionConfig(ready_generations=1)
"""Every generation may exploit, so each case exercises its rule in every generation (the default
waits longer between exploits)."""

SCENARIOS: dict[str, Scenario] = {
    "truncation": Scenario(replace(GREEDY, strategy=SelectionStrategy.TRUNCATION, truncation_quantile=0.25)),
    "opponents same": Scenario(replace(GREEDY, opponents=OpponentStrategy.SAME)),
    "opponents any": Scenario(replace(GREEDY, opponents=OpponentStrategy.ANY), workers=1),
    "smoothed": Scenario(replace(GREEDY, score=SelectionScore.SMOOTHED, score_window=3)),
    "improvement": Scenario(replace(GREEDY, score=SelectionScore.IMPROVEMENT, score_window=2)),
    "ready steps": Scenario(replace(GREEDY, ready_steps=2 * S)),
    "resample": Scenario(GREEDY, ExploreConfig(ExploreStrategy.RESAMPLE, resample_probability=1.0)),
    "pb2": Scenario(GREEDY, ExploreConfig(ExploreStrategy.PB2, pb2_max_points=16)),
    "rejuvenation": Scenario(GREEDY, rejuvenate=1, workers=1),
    "default selection": Scenario(),
}


def scenario_config(s: Scenario) -> StudyConfig:
    return StudyConfig(
        (LR, WIDTH, OPT, SEED),
        (Objective("score", Goal.MAXIMIZE),),
        algorithm=AlgorithmConfig(
            population_size=POPULATION,
            max_generations=GENERATIONS,
            steps_per_trial=S,
            seed=11,
            selection=s.selection,
            explore=s.explore,
            rejuvenate_after_generations=s.rejuvenate,
        ),
    )


def final_step(t: Trial) -> int:
    assert t.final_measurement is not None
    step = checkpoint_step(Path(t.final_measurement.checkpoint_path))
    assert step is not None and step == t.final_measurement.step
    return step


def score_of(t: Trial) -> float:
    assert t.final_measurement is not None
    return t.final_measurement.metrics["score"]


def is_perturbation(child: float, parent: float) -> bool:
    return any(math.isclose(child, min(max(parent * f, LR.low), LR.high)) for f in FACTORS)


def run_study(server: RunningServer, client: PbtClient, name: str, tmp_path: Path) -> dict[int, Trial]:
    scenario = SCENARIOS[name]
    study = client.create_study("study", scenario_config(scenario)).name
    ran = run_workers(f"127.0.0.1:{server.port}", study, train, evaluate, scenario.workers, tmp_path / "runs")
    assert client.get_study(study).state is StudyState.DONE
    trials = {t.id: t for t in client.list_trials(study)}
    assert ran == len(trials) == POPULATION * GENERATIONS
    assert all(t.status is TrialStatus.COMPLETED for t in trials.values())
    return trials


def check_lineages(trials: Mapping[int, Trial]) -> None:
    """Fresh lines train one interval; a warm-started child of generation g catches up to (g+1)·S."""
    for t in trials.values():
        assert 1e-4 <= float(t.hparams["lr"]) <= 1.0 and type(t.hparams["width"]) is int
        assert 1 <= int(t.hparams["width"]) <= 8 and t.hparams["opt"] in OPT.values
        if t.parent_trial_id is None:
            assert t.warm_start_checkpoint_path == "" and t.steps == S and final_step(t) == S
            assert (t.generation == 0) == (t.initiator_parent_trial_id is None)
            continue
        parent = trials[t.parent_trial_id]
        assert t.warm_start_checkpoint_path == parent.final_measurement.checkpoint_path  # type: ignore[union-attr]
        assert t.steps == (t.generation + 1) * S - final_step(parent)
        assert final_step(t) == (t.generation + 1) * S
        assert t.hparams["seed"] == parent.hparams["seed"]  # frozen


def reproductions(trials: Mapping[int, Trial]) -> list[tuple[Trial, Trial, Trial | None]]:
    """(child, initiator, parent) of every trial of generation 1 and later."""
    out = []
    for t in trials.values():
        if t.generation > 0:
            assert t.initiator_parent_trial_id is not None
            parent = trials[t.parent_trial_id] if t.parent_trial_id is not None else None
            out.append((t, trials[t.initiator_parent_trial_id], parent))
    assert len(out) == POPULATION * (GENERATIONS - 1)
    assert len({initiator.id for _, initiator, _ in out}) == len(out)  # one reproduction each
    return out


def wire_score(t: Trial, trials: Mapping[int, Trial], selection: SelectionConfig) -> float | None:
    """The selection score recomputed from the lineage as the API shows it (parent links and final
    measurements), None where IMPROVEMENT has no rate yet."""
    finals: list[tuple[int, float]] = []
    node: Trial | None = t
    while node is not None and len(finals) < selection.score_window:
        finals.append((final_step(node), score_of(node)))
        node = trials[node.parent_trial_id] if node.parent_trial_id is not None else None
    if selection.score is SelectionScore.SMOOTHED:
        return sum(v for _, v in finals) / len(finals)
    if len(finals) < 2:
        return None
    (last_step, last), (first_step, first) = finals[0], finals[-1]
    return (last - first) / (last_step - first_step)


def last_exploit(t: Trial, trials: Mapping[int, Trial]) -> tuple[int, int]:
    """(global step, generation of the copying child) of the last time `t`'s lineage copied
    another member; (0, 0) for none."""
    while t.parent_trial_id is not None:
        if t.parent_trial_id != t.initiator_parent_trial_id:
            return final_step(trials[t.parent_trial_id]), t.generation
        t = trials[t.parent_trial_id]
    return 0, 0


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_small_study_runs_to_the_end(server: RunningServer, client: PbtClient, name: str, tmp_path: Path) -> None:
    trials = run_study(server, client, name, tmp_path)
    check_lineages(trials)
    children = reproductions(trials)
    copies = [(c, i, p) for c, i, p in children if p is not None and p.id != i.id]
    if name == "truncation":
        assert copies
        assert all(score_of(p) > score_of(i) for _, i, p in copies)  # only from better members
    elif name == "opponents same":
        assert copies and all(p.generation == i.generation for _, i, p in copies)
    elif name == "opponents any":
        assert all(p.generation <= i.generation for _, i, p in copies)
        assert max(i.generation - p.generation for _, i, p in copies) >= 2  # beyond PAST's window of 2
    elif name == "ready steps":
        first = [(c, i, p) for c, i, p in children if c.generation == 1]
        assert all(p is i and c.hparams == i.hparams for c, i, p in first)  # 3 steps < 6: all continue
        assert copies
        for _, initiator, _ in copies:
            assert final_step(initiator) - last_exploit(initiator, trials)[0] >= 2 * S
    elif name == "resample":
        warm = [(c, p) for c, _, p in children if p is not None]
        assert warm and not any(is_perturbation(float(c.hparams["lr"]), float(p.hparams["lr"])) for c, p in warm)
    elif name == "pb2":
        chosen = [c for c, _, p in children if p is not None and not is_perturbation(
            float(c.hparams["lr"]), float(p.hparams["lr"]))]  # fmt: skip
        assert chosen, "PB2 never chose a learning rate itself"
    elif name == "rejuvenation":
        restarted = [c for c, _, p in children if p is None]
        assert restarted and all(c.steps == S and c.warm_start_checkpoint_path == "" for c in restarted)
    elif name == "default selection":
        assert copies
        ready_generations = SelectionConfig().ready_generations
        for _, initiator, _ in copies:
            assert initiator.generation + 1 - last_exploit(initiator, trials)[1] >= ready_generations
    else:
        assert name in ("smoothed", "improvement") and copies
        selection = SCENARIOS[name].selection
        for _, initiator, parent in copies:
            theirs, ours = wire_score(parent, trials, selection), wire_score(initiator, trials, selection)
            if theirs is None or ours is None:
                theirs, ours = score_of(parent), score_of(initiator)
            assert theirs > ours, (name, parent.id, initiator.id)


def test_the_same_study_without_rejuvenation_never_restarts(
    server: RunningServer, client: PbtClient, tmp_path: Path
) -> None:
    """The control of the rejuvenation case: the same problem, where no lineage restarts."""
    control = replace(SCENARIOS["rejuvenation"], rejuvenate=0)
    client.create_study("control", scenario_config(control))
    run_workers(f"127.0.0.1:{server.port}", "control", train, evaluate, control.workers, tmp_path / "runs")
    trials = client.list_trials("control")
    assert len(trials) == POPULATION * GENERATIONS
    assert all(t.parent_trial_id is not None for t in trials if t.generation > 0)
