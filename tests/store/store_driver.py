"""A small driver over a storage that keeps the storage tests short (fixture `driver`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pbt_service.core.types import (
    AlgorithmConfig,
    Comparison,
    Condition,
    Goal,
    Measurement,
    MedianStopping,
    Objective,
    ParameterSpec,
    ParameterType,
    ParamValue,
    Scale,
    Study,
    StudyConfig,
    Trial,
    TrialProposal,
    TrialStatus,
)
from pbt_service.store.sql_storage import SqlStorage

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
METRIC = "accuracy"
CONFIG = StudyConfig(
    parameters=(
        ParameterSpec("learning_rate", ParameterType.FLOAT, low=1e-4, high=1.0, scale=Scale.LOG),
        ParameterSpec("layers", ParameterType.INTEGER, low=1, high=8),
    ),
    objectives=(Objective(METRIC),),
    algorithm=AlgorithmConfig(population_size=4, opponent_generations=2, seed=7),
)

# Every kind of field set away from its default, for round-trip tests.
FULL_CONFIG = StudyConfig(
    parameters=(
        ParameterSpec("lr", ParameterType.FLOAT, low=1e-5, high=0.1, scale=Scale.LOG),
        ParameterSpec("layers", ParameterType.INTEGER, low=1, high=6, frozen=True),
        ParameterSpec("dropout", ParameterType.DISCRETE, values=(0.0, 0.25, 0.5)),
        ParameterSpec("optimizer", ParameterType.CATEGORICAL, values=("adam", "sgd")),
        ParameterSpec(
            "momentum", ParameterType.FLOAT, low=0.0, high=0.99, condition=Condition("optimizer", ("sgd",))
        ),
    ),
    objectives=(Objective("accuracy"), Objective("loss", Goal.MINIMIZE)),
    comparison=Comparison.PARETO,
    algorithm=AlgorithmConfig(
        population_size=8,
        opponent_generations=3,
        perturbation_factors=(0.5, 2.0),
        max_generations=10,
        max_trials=100,
        steps_per_trial=1000,
        seed=2**40,
        median_stopping=MedianStopping(enabled=True, min_completed_trials=5, min_measurements=2),
    ),
)


class StoreDriver:
    """Creates studies and trials and moves them through their life cycle, one transaction each."""

    now = NOW
    config = CONFIG

    def __init__(self, storage: SqlStorage) -> None:
        self.storage = storage

    def study(self, name: str = "study", config: StudyConfig = CONFIG) -> Study:
        return self.storage.run(lambda tx: tx.create_study(name, config, NOW))

    def trial(
        self,
        study: str = "study",
        *,
        generation: int = 0,
        hparams: dict[str, ParamValue] | None = None,
        initiator: int | None = None,
        parent: int | None = None,
        worker: str = "w0",
        at: datetime = NOW,
    ) -> Trial:
        proposal = TrialProposal(
            generation=generation,
            hparams={"learning_rate": 0.1, "layers": 2} if hparams is None else hparams,
            warm_start_checkpoint_path=f"/ckpt/{parent}" if parent is not None else "",
            parent_trial_id=parent,
            initiator_id=initiator,
        )
        return self.storage.run(lambda tx: tx.create_trial(study, proposal, worker, at))

    def measure(self, trial_id: int, step: int, value: float, *, at: datetime = NOW) -> bool:
        measurement = Measurement(
            step=step, metrics={METRIC: value}, checkpoint_path=f"/ckpt/{trial_id}/{step}"
        )
        return self.storage.run(lambda tx: tx.add_measurement(trial_id, measurement, at))

    def finish(
        self, trial_id: int, status: TrialStatus, message: str = "", final: Measurement | None = None
    ) -> Trial:
        return self.storage.run(
            lambda tx: tx.finish_trial(trial_id, status, final, message, NOW + timedelta(hours=1))
        )

    def complete(self, trial_id: int, value: float = 0.5, step: int = 1) -> Trial:
        self.measure(trial_id, step, value)
        return self.finish(trial_id, TrialStatus.COMPLETED)

    def get(self, trial_id: int) -> Trial:
        return self.storage.run(lambda tx: tx.get_trial(trial_id))
