"""`pbt-dashboard` as a user sees it: the command runs as its own process against the real service
while a worker trains a study, and headless Chromium checks what the pages show — the study
names, a completed-trials count that grows without a reload, the active trial's worker, and a
rendered plot — with no script error (the page's Content-Security-Policy included).

Needs Debian's `chromium` and `chromium-driver` (the test command installs them); without them
the test fails saying so, it does not skip."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from examples.toy.problem import evaluate, study_config
from examples.toy.problem import train as toy_train
from pbt_service.local import LocalService
from tests.worker_client.conftest import PYTHON, ROOT, free_port, subprocess_env
from worker_client import PbtClient, TrialContext, Worker

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WORKER = "browser-worker"


def slow_train(ctx: TrialContext) -> None:
    """The toy trainer, slowed so the study runs for a while and a trial is active most of the time."""
    time.sleep(0.15)
    toy_train(ctx)


class Dashboard:
    """`python -m worker_client.dashboard.cli` on a free port, stopped with SIGTERM."""

    def __init__(self, address: str, log: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        env = {k: v for k, v in subprocess_env().items() if not k.startswith("PBT_")}
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "worker_client.dashboard.cli", "--service", address, "--port", port,
                 "--refresh-seconds", "0.5"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )  # fmt: skip
        self.log = log
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as answer:
                    if answer.read() == b"ok":
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"pbt-dashboard did not start:\n{log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> int:
        self.process.terminate()
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"pbt-dashboard ignored SIGTERM:\n{self.log.read_text()}") from None


def chromium() -> WebDriver:
    """Headless Chromium through Debian's chromedriver; fails (never skips) when they are missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: install Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver; scripts/test.sh does)")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[str, Worker]]:
    """A service, a study 'live' being trained by one worker in a thread, an empty study 'waiting',
    and the dashboard; everything stopped at the end."""
    with LocalService(f"sqlite:///{tmp_path / 'pbt.db'}", retry_after_seconds=0.05) as service, \
            PbtClient(service.address) as client:
        client.create_study("live", study_config(population_size=4, max_generations=15))
        client.create_study("waiting", study_config(population_size=4, max_generations=3))
        dashboard = Dashboard(service.address, tmp_path / "dashboard.log")
        worker = Worker(client, "live", slow_train, evaluate, worker_id=WORKER, workdir=tmp_path / "runs")
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            yield dashboard.url, worker
        finally:
            worker.shutdown("test over")
            thread.join(timeout=20)
            code = dashboard.stop()
        assert code == 0, dashboard.log.read_text()
        assert not thread.is_alive()


@pytest.mark.slow
def test_the_dashboard_shows_a_running_study_updating_without_a_reload(running: tuple[str, Worker]) -> None:
    url, _ = running
    driver = chromium()
    try:
        # the page replaces its table rows on every update: an element found a moment ago may be gone
        wait = WebDriverWait(driver, 20, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])
        driver.get(url + "/")
        wait.until(lambda d: {"live", "waiting"} <= {a.text for a in d.find_elements(By.CSS_SELECTOR, "#studies a")})
        driver.find_element(By.LINK_TEXT, "live").click()
        wait.until(lambda d: d.find_element(By.ID, "study-name").text == "live")
        driver.execute_script("window.__test_marker = 'no reload since'")

        def completed(d: WebDriver) -> int:
            return int(d.find_element(By.ID, "completed-count").text)

        wait.until(lambda d: completed(d) >= 1)
        first = completed(driver)
        wait.until(lambda d: completed(d) >= first + 2)
        assert driver.execute_script("return window.__test_marker") == "no reload since"
        wait.until(lambda d: WORKER in d.find_element(By.ID, "active").text)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#plot-best.js-plotly-plot svg.main-svg"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#plot-progress.js-plotly-plot svg.main-svg"))
        assert driver.find_element(By.ID, "generations").text.endswith("/ 15")
        assert driver.find_element(By.ID, "error").is_displayed() is False
        assert driver.execute_script("return window.__test_marker") == "no reload since"
        logs = driver.get_log("browser")  # type: ignore[attr-defined]  # Chromium's, not in WebDriver's stubs
        errors = [e for e in logs if e["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()
