"""The dashboard's routes through Starlette's TestClient, over a real service: the JSON says what the
results API says; an unknown study is a 404 that says so; an empty study says there is nothing yet
(plots included); a refused token is named as such and no token ever reaches a page; a hostile
worker id is escaped; `pbt-dashboard`'s bad flags are argparse errors naming the flag."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from examples.toy.problem import evaluate, study_config, train
from pbt_service.core.types import Measurement
from pbt_service.local import LocalService
from pbt_service.server import ServerSettings, create_server
from tests.worker_client.conftest import ROOT, free_port
from tests.worker_client.test_import_isolation import CHECK
from worker_client import ClientSettings, PbtClient, Worker
from worker_client.dashboard.app import create_app
from worker_client.dashboard.cli import INSTALL_HINT
from worker_client.dashboard.cli import main as dashboard_main
from worker_client.results import connect
from worker_client.results.plots import PLOTS

HOSTILE = '</script><script>alert("x")</script>&<b>'
"""A valid worker id (study names cannot hold markup; worker ids can)."""
TOKEN = "t0ken-never-shown"


class Served:
    def __init__(self, address: str, database_url: str) -> None:
        self.address = address
        self.database_url = database_url


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """'toy' run to the end (population 4, 3 generations), 'empty' with no trial, and 'xss' with
    one active trial held by HOSTILE whose last measurement diverged (NaN)."""
    folder = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{folder / 'pbt.db'}"
    with LocalService(url, retry_after_seconds=0.05) as service, PbtClient(service.address) as client:
        client.create_study("toy", study_config(population_size=4, max_generations=3))
        assert Worker(client, "toy", train, evaluate, worker_id="w1", workdir=folder / "runs").run() == 12
        client.create_study("empty", study_config(population_size=4, max_generations=3))
        client.create_study("xss", study_config(population_size=2, max_generations=2))
        trial = client.get_new_suggestion("xss", HOSTILE).trials[0]
        client.report_measurement(trial.id, HOSTILE, Measurement(step=1, metrics={"Q": math.nan}))
        yield Served(service.address, url)


@pytest.fixture(scope="module")
def web(served: Served) -> Iterator[TestClient]:
    with connect(served.address) as results, TestClient(create_app(results, refresh_seconds=0.1)) as c:
        yield c


def test_the_json_says_what_the_results_api_says(web: TestClient, served: Served) -> None:
    with connect(served.address) as results:
        expected = {s.name: s for s in results.studies()}
        toy = results.study("toy")
        best = toy.best(1)[0]
        finished = sorted(toy.all_trials(), key=lambda t: (t.end_time, t.id), reverse=True)
    listed = {s["name"]: s for s in web.get("/api/studies").json()["studies"]}
    assert sorted(listed) == ["empty", "toy", "xss"] == sorted(expected)
    assert listed["toy"]["completed"] == 12 and listed["toy"]["generations_completed"] == 3
    assert listed["toy"]["best_trial_id"] == expected["toy"].best_trial_id == best.id
    assert listed["toy"]["progress"] == 1.0 and listed["xss"]["active_workers"] == [HOSTILE]
    study = web.get("/api/studies/toy").json()
    assert study["summary"] == listed["toy"] and study["active"] == [] and not study["empty"]
    assert study["objective"] == {"metric": "Q", "goal": "maximize"}
    values = [p["value"] for p in study["best_series"]]
    assert [p["completed"] for p in study["best_series"]] == list(range(1, 13))
    assert values == sorted(values) and values[-1] == pytest.approx(best.final_measurement.metrics["Q"])  # type: ignore[union-attr]
    assert [t["trial_id"] for t in study["recent"]] == [t.id for t in finished[:10]]
    assert {t["worker_id"] for t in study["recent"]} == {"w1"}


def test_the_pages_name_the_studies_and_hold_a_div_per_plot(web: TestClient) -> None:
    listing = web.get("/")
    assert listing.status_code == 200 and '"name":"toy"' in listing.text and '"name":"empty"' in listing.text
    page = web.get("/studies/toy")
    assert page.status_code == 200 and 'data-study="toy"' in page.text
    assert all(f'id="plot-{p}"' in page.text for p in PLOTS)
    assert '<script src="../static/plotly.min.js">' in page.text and "cdn" not in page.text.lower()
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


def test_every_plot_is_a_plotly_figure(web: TestClient) -> None:
    for plot in PLOTS:
        figure = web.get(f"/api/studies/toy/plots/{plot}").json()
        assert figure["data"] and "layout" in figure, plot
    assert web.get("/api/studies/toy/plots/best?metric=Q&top=2").status_code == 200
    assert "plots are progress" in web.get("/api/studies/toy/plots/nope").json()["error"]
    assert web.get("/api/studies/toy/plots/best?top=x").json() == {"error": "top: expected a whole number, got 'x'"}
    assert web.get("/api/studies/toy/plots/best?metric=loss").status_code == 400


def test_an_unknown_study_is_a_404_that_says_so(web: TestClient) -> None:
    for path in ("/api/studies/nope", "/api/studies/nope/plots/best"):
        answer = web.get(path)
        assert answer.status_code == 404 and answer.json() == {"error": "study 'nope' not found"}
    page = web.get("/studies/nope")
    assert page.status_code == 404 and "Study not found" in page.text
    assert "study &#x27;nope&#x27; not found" in page.text


def test_an_empty_study_says_nothing_yet(web: TestClient) -> None:
    study = web.get("/api/studies/empty").json()
    assert study["empty"] and study["message"] == "nothing yet: no trial has completed"
    assert study["best_series"] == [] and study["recent"] == [] and study["summary"]["best_trial_id"] is None
    assert web.get("/studies/empty").status_code == 200
    for plot in PLOTS:
        answer = web.get(f"/api/studies/empty/plots/{plot}")
        assert answer.status_code == 200 and "no completed trials yet" in answer.text, plot


def test_a_hostile_worker_id_is_escaped_and_a_nan_is_null(web: TestClient) -> None:
    study = web.get("/api/studies/xss").json()
    assert [(t["worker_id"], t["step"], t["metrics"]) for t in study["active"]] == [(HOSTILE, 1, {"Q": None})]
    for path in ("/", "/studies/xss"):
        text = web.get(path).text
        assert HOSTILE not in text and "</script><script>alert" not in text
        assert "\\u003c/script\\u003e\\u003cscript\\u003ealert" in text
    for plot in PLOTS:
        assert web.get(f"/api/studies/xss/plots/{plot}").status_code == 200, plot


def test_plotly_js_comes_from_the_installed_package(web: TestClient) -> None:
    import plotly

    bundled = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    answer = web.get("/static/plotly.min.js")
    assert answer.status_code == 200 and answer.headers["content-encoding"] == "gzip"
    assert answer.content == bundled and "javascript" in answer.headers["content-type"]
    assert web.get("/healthz").text == "ok"


def test_the_database_url_reads_the_same(web: TestClient, served: Served) -> None:
    with connect(served.database_url) as results, TestClient(create_app(results, refresh_seconds=1)) as db:
        assert db.get("/api/studies").json() == web.get("/api/studies").json()
        assert db.get("/api/studies/toy").json()["best_series"] == web.get("/api/studies/toy").json()["best_series"]


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("locked")
    running = create_server(ServerSettings(database_url=f"sqlite:///{folder / 'pbt.db'}", host="127.0.0.1",
                                           port=0, auth_token=TOKEN))
    address = f"127.0.0.1:{running.port}"
    try:
        with PbtClient(address, token=TOKEN) as client:
            client.create_study("locked", study_config(population_size=2, max_generations=1))
        yield address
    finally:
        running.stop(0)


def test_a_wrong_token_is_named_and_no_token_is_ever_shown(locked: str) -> None:
    wrong = ClientSettings(address=locked, token="wrong-one", retry_seconds=0)
    with connect(wrong) as results, TestClient(create_app(results, redact=["wrong-one"])) as web:
        for path in ("/api/studies", "/api/studies/locked", "/api/studies/locked/plots/best"):
            answer = web.get(path)
            assert answer.status_code == 502 and "refused the token" in answer.json()["error"], path
        for path in ("/", "/studies/locked"):
            answer = web.get(path)
            assert answer.status_code == 502 and "refused the token" in answer.text and "Traceback" not in answer.text
            assert "wrong-one" not in answer.text
    right = ClientSettings(address=locked, token=TOKEN, retry_seconds=0)
    with connect(right) as results, TestClient(create_app(results, redact=[TOKEN])) as web:
        for path in ("/", "/studies/locked", "/api/studies", "/api/studies/locked", "/api/studies/locked/plots/best",
                     "/studies/nope", "/api/studies/nope"):
            answer = web.get(path)
            assert answer.status_code in (200, 404) and TOKEN not in answer.text, path
        assert "locked" in web.get("/api/studies").text


def test_an_unreachable_service_is_a_503_that_says_so() -> None:
    with connect(ClientSettings(address=f"127.0.0.1:{free_port()}", retry_seconds=0)) as results, \
            TestClient(create_app(results)) as web:
        answer = web.get("/api/studies")
        assert answer.status_code == 503 and "UNAVAILABLE" in answer.json()["error"]
        assert web.get("/").status_code == 503


@pytest.mark.parametrize(("argv", "named"), [
    (["--port", "65536"], "--port"), (["--port", "http"], "--port"), (["--refresh-seconds", "0"], "--refresh-seconds"),
    (["--refresh-seconds", "nan"], "--refresh-seconds"), (["--deadline-seconds", "-1"], "--deadline-seconds"),
    (["--database-url", "sqlite:///x.db", "--service", "h:1"], "--database-url"),
    (["--database-url", "runs/pbt.db"], "--database-url"), (["--bogus"], "--bogus"),
])  # fmt: skip
def test_bad_flags_are_argparse_errors_naming_the_flag(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        dashboard_main(argv)
    assert exit.value.code == 2 and named in capsys.readouterr().err


def test_a_missing_web_server_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert dashboard_main(["--service", "127.0.0.1:1"]) == 1
    assert INSTALL_HINT in capsys.readouterr().err


def test_a_missing_database_file_is_an_error_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        dashboard_main(["--database-url", f"sqlite:///{tmp_path / 'missing.db'}"])
    assert exit.value.code == 2 and "--database-url" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["worker_client.dashboard", "worker_client.dashboard.app",
                                    "worker_client.dashboard.cli", "worker_client.dashboard.data"])
def test_the_dashboard_imports_no_server_code(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", CHECK, module], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
