"""The PBT plots: every plot writes a valid PNG and an offline HTML file, and what they draw is right —
checked on a real toy run (maximize) and on a hand-built study (minimize, a diverged, a failed and
a running trial, log-scaled, categorical and conditional parameters)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest
from matplotlib.artist import Artist
from matplotlib.collections import Collection, LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from examples.toy import problem as toy
from pbt_service.core.fitness import best_trials
from pbt_service.core.types import (
    Condition,
    Goal,
    Measurement,
    Objective,
    ParameterSpec,
    ParameterType,
    Scale,
    Study,
    StudyConfig,
    Trial,
    TrialStatus,
)
from pbt_service.local import LocalService
from tests.worker_client.conftest import ROOT
from worker_client import PbtClient, Worker
from worker_client.results.events import Event, event_of
from worker_client.results.plot_data import EMPTY_MESSAGE
from worker_client.results.plots import PLOTS, matplotlib_figure, plotly_figure, plotly_json, write_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Run:
    study: Study
    trials: list[Trial]

    @property
    def by_id(self) -> dict[int, Trial]:
        return {t.id: t for t in self.trials}

    def events(self) -> dict[int, Event]:
        return {t.id: event_of(t, self.by_id) for t in self.trials}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("plots")
    with LocalService(f"sqlite:///{folder / 'p.db'}") as service, PbtClient(service.address) as client:
        client.create_study("toy", toy.study_config(population_size=4, max_generations=5))
        Worker(client, "toy", toy.train, toy.evaluate, worker_id="w", workdir=folder / "runs").run()
        run = Run(client.get_study("toy"), client.list_trials("toy"))
    yield run


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def trial(id: int, generation: int, hparams: dict[str, Any], points: Sequence[tuple[int, float]], *,
          parent: int | None = None, initiator: int | None = None,
          status: TrialStatus = TrialStatus.COMPLETED) -> Trial:
    """A hand-made trial; its loss at each step is given, its accuracy is 1 - loss."""
    measurements = tuple(Measurement(step, {"loss": loss, "accuracy": 1 - loss}) for step, loss in points)
    done = status is TrialStatus.COMPLETED
    return Trial(id, "hand", id, generation, status, hparams, parent_trial_id=parent,
                 initiator_parent_trial_id=initiator, measurements=measurements,
                 final_measurement=measurements[-1] if done and measurements else None,
                 end_time=T0 + timedelta(seconds=id) if status is not TrialStatus.ACTIVE else None)


def hand_run() -> Run:
    """Minimize loss. Trial 3 diverges (NaN), 4 fails, 10 is still running; 6 and 8 exploit 2."""
    config = StudyConfig(
        parameters=(
            ParameterSpec("lr", ParameterType.FLOAT, low=1e-4, high=1e-1, scale=Scale.LOG),
            ParameterSpec("optimizer", ParameterType.CATEGORICAL, values=("sgd", "adam")),
            ParameterSpec("momentum", ParameterType.FLOAT, low=0.0, high=1.0,
                          condition=Condition("optimizer", ("sgd",))),
        ),
        objectives=(Objective("loss", Goal.MINIMIZE),),
    )
    adam = {"optimizer": "adam"}
    trials = [
        trial(1, 0, {"lr": 0.01, "optimizer": "sgd", "momentum": 0.9}, [(5, 1.0), (10, 0.8)]),
        trial(2, 0, {"lr": 0.001, **adam}, [(5, 1.2), (10, 0.5)]),
        trial(3, 0, {"lr": 0.1, "optimizer": "sgd", "momentum": 0.5}, [(5, 2.0), (10, math.nan)]),
        trial(4, 0, {"lr": 0.05, **adam}, [], status=TrialStatus.FAILED),
        trial(5, 0, {"lr": 0.02, **adam}, [(5, 0.9), (10, 0.7)]),
        trial(6, 1, {"lr": 0.0012, **adam}, [(15, 0.3)], parent=2, initiator=1),
        trial(7, 1, {"lr": 0.001, **adam}, [(15, 0.4)], parent=2, initiator=2),
        trial(8, 1, {"lr": 0.0008, **adam}, [(15, 0.35)], parent=2, initiator=3),
        trial(9, 1, {"lr": 0.024, **adam}, [(15, 0.6)], parent=5, initiator=5),
        trial(10, 2, {"lr": 0.0012, **adam}, [(20, 0.25)], parent=6, initiator=6, status=TrialStatus.ACTIVE),
    ]
    return Run(Study("hand", config), trials)


def artists(figure: Figure, gid: str) -> list[Artist]:
    found: list[Artist] = []
    for ax in figure.axes:
        found += [a for a in [*ax.lines, *ax.collections, *ax.patches] if a.get_gid() == gid]
    return found


def line(figure: Figure, gid: str) -> Line2D:
    [found] = artists(figure, gid)
    assert isinstance(found, Line2D)
    return found


def xs(line: Line2D) -> list[float]:
    values: list[float] = np.asarray(line.get_xdata(), dtype=float).tolist()
    return values


def ys(line: Line2D) -> list[float]:
    values: list[float] = np.asarray(line.get_ydata(), dtype=float).tolist()
    return values


def offsets(figure: Figure, gid: str) -> int:
    return sum(np.asarray(a.get_offsets()).shape[0] for a in artists(figure, gid) if isinstance(a, Collection))


def traces(figure: Any, meta: str) -> list[Any]:
    return [t for t in figure.data if t.meta == meta]


def final(trial: Trial, metric: str) -> float:
    assert trial.final_measurement is not None
    return trial.final_measurement.metrics[metric]


def test_every_plot_writes_a_png_and_an_offline_html_file(toy_run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = write_plots(toy_run.study, toy_run.trials, out)
    assert paths == [out / "plotly.min.js", *(out / f"{name}.{fmt}" for name in PLOTS for fmt in ("png", "html"))]
    assert (out / "plotly.min.js").stat().st_size > 1_000_000  # plotly.js itself, once: works offline
    for path in paths[1:]:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(PNG_SIGNATURE)
            height, width, _ = matplotlib.image.imread(path).shape
            assert width >= 500 and height >= 300
        else:
            html = data.decode()
            assert "Plotly.newPlot" in html and len(data) < 1_000_000
            assert '<script charset="utf-8" src="plotly.min.js"></script>' in html and "cdn" not in html.lower()
    assert '"meta":"exploit"' in (out / "progress.html").read_text()
    assert write_plots(toy_run.study, toy_run.trials, tmp_path, formats=["png"], names=["best"], prefix="toy-") == [
        tmp_path / "toy-best.png"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "toy-best.png"]  # no plotly.js without HTML


def test_progress_marks_every_exploit_at_the_copied_point(toy_run: Run) -> None:
    events = toy_run.events()
    exploits = [toy_run.by_id[i] for i, e in events.items() if e is Event.EXPLOIT]
    explores = [i for i, e in events.items() if e is Event.EXPLORE]
    assert exploits and explores, "the toy run should both exploit and explore"
    figure = matplotlib_figure("progress", toy_run.study, toy_run.trials)
    marks = line(figure, "exploit")
    assert len(xs(marks)) == len(exploits)
    assert len(xs(line(figure, "explore"))) == len(explores)
    parents = [toy_run.by_id[t.parent_trial_id] for t in exploits if t.parent_trial_id]
    assert xs(marks) == [p.final_measurement.step for p in parents if p.final_measurement]
    assert ys(marks) == pytest.approx([final(p, "Q") for p in parents])
    assert len(artists(figure, f"trial-{toy_run.trials[-1].id}")) == 1
    plotly = plotly_figure("progress", toy_run.study, toy_run.trials)
    [exploit] = traces(plotly, "exploit")
    assert len(exploit.x) == len(exploits)
    assert {t.meta for t in plotly.data} >= {"member-0", "member-3", "explore", "jumps"}


def test_best_so_far_is_monotone_and_ends_at_the_best_trial(toy_run: Run) -> None:
    winner = best_trials(toy_run.trials, toy_run.study.config.objectives, toy_run.study.config.comparison)[0]
    figure = matplotlib_figure("best", toy_run.study, toy_run.trials)
    curves = artists(figure, "best-so-far")
    assert len(curves) == 2  # against resource, against step
    plotly = plotly_figure("best", toy_run.study, toy_run.trials)
    for curve, trace in zip(curves, traces(plotly, "best-so-far"), strict=True):
        assert isinstance(curve, Line2D)
        heights = ys(curve)
        assert heights == sorted(heights) and heights[-1] == final(winner, "Q")
        assert list(trace.y) == heights
    assert isinstance(curves[0], Line2D)
    resource = xs(curves[0])
    steps = {t.id: t.final_measurement.step for t in toy_run.trials if t.final_measurement}
    trained = sum(steps[t.id] - (steps[t.parent_trial_id] if t.parent_trial_id else 0) for t in toy_run.trials)
    assert resource == sorted(resource) and resource[-1] == trained


def test_lineage_has_a_node_per_trial_and_an_edge_per_warm_start(toy_run: Run) -> None:
    with_parent = sum(t.parent_trial_id is not None for t in toy_run.trials)
    exploits = sum(e is Event.EXPLOIT for e in toy_run.events().values())
    figure = matplotlib_figure("lineage", toy_run.study, toy_run.trials)
    assert offsets(figure, "nodes") + offsets(figure, "nodes-without-metric") == len(toy_run.trials)
    edges = [a for a in artists(figure, "edges-continue") + artists(figure, "edges-exploit")]
    assert sum(len(e.get_segments()) for e in edges if isinstance(e, LineCollection)) == with_parent
    [exploit_edges] = artists(figure, "edges-exploit")
    assert isinstance(exploit_edges, LineCollection) and len(exploit_edges.get_segments()) == exploits
    assert offsets(figure, "best") == 1 and len(figure.axes) == 2  # the tree and its colour bar
    plotly = plotly_figure("lineage", toy_run.study, toy_run.trials)
    assert sum(len(t.x) for t in traces(plotly, "nodes") + traces(plotly, "nodes-without-metric")) == len(
        toy_run.trials
    )
    assert sum(t.x.count(None) for t in traces(plotly, "edges-continue") + traces(plotly, "edges-exploit")) == (
        with_parent
    )


def test_schedule_draws_the_hyperparameters_of_the_top_trials(toy_run: Run) -> None:
    top = best_trials(toy_run.trials, toy_run.study.config.objectives, toy_run.study.config.comparison)[:2]
    figure = matplotlib_figure("schedule", toy_run.study, toy_run.trials, top=2)
    drawn = {a.get_gid() for ax in figure.axes for a in ax.lines}
    assert drawn == {f"schedule-{t.id}-{p}" for t in top for p in ("h0", "h1")}
    plotly = plotly_figure("schedule", toy_run.study, toy_run.trials, top=2)
    for t in top:
        chain = [t]
        while chain[0].parent_trial_id is not None:
            chain.insert(0, toy_run.by_id[chain[0].parent_trial_id])
        for name in ("h0", "h1"):
            expected = [c.hparams[name] for c in chain] + [t.hparams[name]]
            assert ys(line(figure, f"schedule-{t.id}-{name}")) == expected
            [trace] = traces(plotly, f"schedule-{t.id}-{name}")
            assert list(trace.y) == expected
            assert list(trace.x) == [0, *(c.final_measurement.step for c in chain if c.final_measurement)]


def test_hyperparameters_show_every_trial_per_generation(toy_run: Run) -> None:
    figure = matplotlib_figure("hyperparameters", toy_run.study, toy_run.trials)
    generations = len({t.generation for t in toy_run.trials})
    for name in ("h0", "h1"):
        assert offsets(figure, f"hparam-{name}") == len(toy_run.trials)
        assert len(xs(line(figure, f"median-{name}"))) == generations
    json_figure = json.loads(plotly_json("hyperparameters", toy_run.study, toy_run.trials))
    assert {"data", "layout"} <= set(json_figure)
    assert sum(len(t["x"]) for t in json_figure["data"] if t.get("meta") == "hparam-h0") == len(toy_run.trials)


def empty_text(figure: Figure) -> bool:
    return any(t.get_text() == EMPTY_MESSAGE for t in figure.findobj(Text))


@pytest.mark.parametrize("name", PLOTS)
def test_an_empty_study_says_so(name: str, tmp_path: Path) -> None:
    empty = Study("empty", toy.study_config())
    assert empty_text(matplotlib_figure(name, empty, []))
    assert [a.text for a in plotly_figure(name, empty, []).layout.annotations] == [EMPTY_MESSAGE]
    assert all(p.stat().st_size > 0 for p in write_plots(empty, [], tmp_path, names=[name]))
    running = [Trial(1, "empty", 1, 0, TrialStatus.ACTIVE, {"h0": 0.5, "h1": 0.5})]
    assert empty_text(matplotlib_figure(name, empty, running)) is (name in ("progress", "best", "schedule"))


def test_a_minimize_study_ranks_the_lowest_first_and_greys_what_has_no_metric(tmp_path: Path) -> None:
    run = hand_run()
    best = matplotlib_figure("best", run.study, run.trials)
    by_resource, by_step = (line_ for line_ in artists(best, "best-so-far") if isinstance(line_, Line2D))
    assert xs(by_resource) == [10, 20, 40, 45, 50, 55, 60]
    assert ys(by_resource) == [0.8, 0.5, 0.5, 0.3, 0.3, 0.3, 0.3]
    assert ys(by_step)[-1] == 0.3
    lineage = plotly_figure("lineage", run.study, run.trials)
    [best_node] = traces(lineage, "best")
    [node] = [n for n in lineage.data if n.meta == "nodes"]
    assert "trial 6" in best_node.name and node.marker.reversescale is True  # bright = low loss
    [grey] = traces(lineage, "nodes-without-metric")
    assert sorted(grey.hovertext) == ["trial 10: active", "trial 3: completed", "trial 4: failed"]
    progress = matplotlib_figure("progress", run.study, run.trials)
    exploit, explore = line(progress, "exploit"), line(progress, "explore")
    assert (xs(exploit), ys(exploit), xs(explore), ys(explore)) == ([10, 10], [0.5, 0.5], [10], [0.7])
    assert ys(line(progress, "trial-3")) == [2.0]  # the NaN point skipped
    schedule = matplotlib_figure("schedule", run.study, run.trials, top=2)
    assert [ax.get_ylabel() for ax in schedule.axes] == ["lr", "optimizer"]  # momentum: no top trial has it
    assert schedule.axes[0].get_yscale() == "log"
    assert ys(line(schedule, "schedule-6-optimizer")) == [1, 1, 1]  # adam
    hyperparameters = plotly_figure("hyperparameters", run.study, run.trials)
    assert list(traces(hyperparameters, "hparam-optimizer-sgd")[0].y) == [2, 0, 0]
    assert list(traces(hyperparameters, "hparam-optimizer-adam")[0].y) == [3, 4, 1]
    assert len(traces(hyperparameters, "hparam-momentum")[0].x) == 2
    assert hyperparameters.layout.yaxis.type == "log"
    assert len(write_plots(run.study, run.trials, tmp_path)) == 2 * len(PLOTS) + 1  # and plotly.min.js


def test_another_metric_is_plotted_with_its_own_direction() -> None:
    run = hand_run()
    figure = plotly_figure("best", run.study, run.trials, metric="accuracy")
    assert "higher is better" in figure.layout.title.text
    assert list(traces(figure, "best-so-far")[0].y)[-1] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="'acc' is not reported.*accuracy, loss"):
        matplotlib_figure("best", run.study, run.trials, metric="acc")


def test_unknown_plot_names_and_formats_are_refused(toy_run: Run, tmp_path: Path) -> None:
    for draw in (matplotlib_figure, plotly_figure, plotly_json):
        with pytest.raises(ValueError, match="'nope'.*progress, best, schedule, lineage, hyperparameters"):
            draw("nope", toy_run.study, toy_run.trials)
    with pytest.raises(ValueError, match="'nope'"):
        write_plots(toy_run.study, toy_run.trials, tmp_path, names=["best", "nope"])
    with pytest.raises(ValueError, match="'svg'.*png, html"):
        write_plots(toy_run.study, toy_run.trials, tmp_path, formats=["svg"])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("package", "draw"), [("matplotlib", matplotlib_figure), ("plotly", plotly_figure)])
def test_a_missing_plotting_library_names_the_extra(package: str, draw: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test
    monkeypatch.setitem(sys.modules, package, None)  # what an import finds when it is not installed
    with pytest.raises(ImportError, match=r"pip install 'pbt-service\[results\]'"):
        draw("best", *hand_run().__dict__.values())


def test_importing_the_module_needs_no_plotting_library() -> None:
    check = "import sys, worker_client.results.plots; print(sorted({'matplotlib', 'plotly'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
