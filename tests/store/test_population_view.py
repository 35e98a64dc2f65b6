"""`population_view` on every backend: counts, initiator order, generation limits, opponents."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import event

from pbt_service.core.types import AlgorithmConfig, PopulationView, StudyConfig, TrialStatus
from pbt_service.store.base import Transaction
from tests.store.store_driver import CONFIG, METRIC, StoreDriver


def config(*, opponent_generations: int = 2, max_generations: int = 0) -> StudyConfig:
    algorithm = dataclasses.replace(
        CONFIG.algorithm, opponent_generations=opponent_generations, max_generations=max_generations
    )
    return dataclasses.replace(CONFIG, algorithm=algorithm)


def view(driver: StoreDriver, study_config: StudyConfig = CONFIG) -> PopulationView:
    """The view with its (lazy) opponents read inside the transaction."""

    def read(tx: Transaction) -> PopulationView:
        found = tx.population_view("study", study_config)
        return dataclasses.replace(found, opponents=tuple(found.opponents)) if found.opponents else found

    return driver.storage.run(read)


def test_empty_study(driver: StoreDriver) -> None:
    driver.study()
    assert view(driver) == PopulationView(live_in_generation_zero=0, trials_counted=0)


def test_counts_follow_statuses(driver: StoreDriver) -> None:
    driver.study()
    active, completed, stopped, failed = (driver.trial() for _ in range(4))
    driver.complete(completed.id)
    driver.finish(stopped.id, TrialStatus.STOPPED)
    driver.finish(failed.id, TrialStatus.FAILED)
    child = driver.trial(generation=1, initiator=completed.id)
    assert view(driver) == PopulationView(live_in_generation_zero=2, trials_counted=4)
    driver.finish(child.id, TrialStatus.STOPPED)
    handed_back = view(driver)
    assert (handed_back.live_in_generation_zero, handed_back.trials_counted) == (2, 3)
    assert handed_back.initiator is not None and handed_back.initiator.id == completed.id
    assert handed_back.initiator_generation_size == 2
    assert active.id not in {t.id for t in handed_back.opponents}


def test_initiator_is_oldest_by_generation_then_number(driver: StoreDriver) -> None:
    driver.study()
    late_generation = driver.trial(generation=1)
    first, second = driver.trial(), driver.trial()
    for trial in (second, late_generation, first):
        driver.complete(trial.id)
    order = []
    for _ in range(3):
        initiator = view(driver).initiator
        assert initiator is not None
        order.append(initiator.id)
        driver.trial(generation=initiator.generation + 1, initiator=initiator.id)
    assert order == [first.id, second.id, late_generation.id]
    assert view(driver).initiator is None


def test_max_generations_limits_initiators(driver: StoreDriver) -> None:
    driver.study()
    root = driver.trial()
    driver.complete(root.id)
    child = driver.trial(generation=1, initiator=root.id)
    driver.complete(child.id)
    for limit, expected in ((0, child.id), (3, child.id), (2, None), (1, None)):
        initiator = view(driver, config(max_generations=limit)).initiator
        assert (initiator.id if initiator else None) == expected, limit


def test_opponents_window_excludes_initiator(driver: StoreDriver) -> None:
    driver.study()
    root = driver.trial(hparams={"learning_rate": 0.01, "layers": 1})
    driver.complete(root.id, value=0.1)
    initiator = driver.trial(generation=1)
    sibling = driver.trial(
        generation=1, initiator=root.id, parent=root.id, hparams={"learning_rate": 0.2, "layers": 3}
    )
    running, stopped, newer = (
        driver.trial(generation=1),
        driver.trial(generation=1),
        driver.trial(generation=2),
    )
    driver.measure(initiator.id, 1, 0.3)
    driver.complete(initiator.id, value=0.4, step=2)
    driver.complete(sibling.id, value=0.6, step=5)
    driver.complete(newer.id)
    driver.finish(stopped.id, TrialStatus.STOPPED)

    wide = view(driver, config(opponent_generations=2))
    assert wide.initiator is not None and wide.initiator.id == initiator.id
    assert wide.initiator.measurements == ()  # the engine needs only the final measurement
    assert wide.initiator.final_measurement is not None and wide.initiator.final_measurement.step == 2
    assert wide.initiator_generation_size == 3  # initiator, sibling, running
    assert (wide.live_in_generation_zero, wide.trials_counted) == (1, 5)
    assert [t.id for t in wide.opponents] == [root.id, sibling.id]
    by_id = {t.id: t for t in wide.opponents}
    assert by_id[sibling.id].hparams == {"learning_rate": 0.2, "layers": 3}
    final = by_id[sibling.id].final_measurement
    assert final is not None and (final.step, final.metrics[METRIC]) == (5, 0.6)
    assert all(t.measurements == () and t.status is TrialStatus.COMPLETED for t in wide.opponents)

    narrow = view(driver, config(opponent_generations=1))
    assert [t.id for t in narrow.opponents] == [sibling.id]
    assert running.id not in {t.id for t in wide.opponents}


def test_query_count_does_not_grow_with_population(driver: StoreDriver) -> None:
    driver.study()
    big = dataclasses.replace(CONFIG, algorithm=AlgorithmConfig(population_size=40, opponent_generations=2))

    def statements() -> int:
        executed: list[str] = []

        def count(*args: Any) -> None:
            executed.append(args[2])

        engine = driver.storage.engine
        event.listen(engine, "before_cursor_execute", count)
        def tournament_read(tx: Transaction) -> PopulationView:
            found = tx.population_view("study", big)
            assert len(found.opponents) >= 2
            found.opponents[len(found.opponents) - 1]  # a tournament reads the one opponent it draws
            return found

        try:
            result = driver.storage.run(tournament_read)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert result.initiator is not None
        return len([s for s in executed if s.lstrip().upper().startswith("SELECT")])

    for _ in range(3):
        driver.complete(driver.trial().id)
    few = statements()
    for _ in range(30):
        driver.complete(driver.trial().id)
    assert statements() == few <= 4  # study id (a suggestion has it), head row with the initiator, one opponent
