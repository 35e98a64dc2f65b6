"""Regenerates the README's screenshot of `pbt-dashboard`: the toy problem (population 8, 10
generations) trained by 4 workers on an in-process service, the dashboard run as its own command,
and headless Chromium photographing the study page (1280x900) while the last generations train.

    .venv/bin/python docs/images/make_dashboard_screenshot.py

Needs Debian's chromium and chromium-driver, and selenium (the dev extra).
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE / "dashboard.png"
POPULATION, GENERATIONS, WORKERS = 8, 10, 4
SHOOT_AT_GENERATION = 8
"""Photograph once this many generations are complete: the plots are full and workers still busy."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_health(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return
        except OSError:
            if process.poll() is not None:
                raise SystemExit("pbt-dashboard exited before serving") from None
            time.sleep(0.1)
    raise SystemExit("pbt-dashboard did not start")


def main() -> None:
    sys.path.insert(0, str(ROOT))  # `examples` is not installed; the repository root holds it
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from examples.toy import problem as toy
    from pbt_service.local import LocalService
    from worker_client import PbtClient, TrialContext, Worker
    from worker_client.results import connect

    def train(ctx: TrialContext) -> None:
        time.sleep(0.5)  # slow enough that the page shows workers holding trials
        toy.train(ctx)

    with tempfile.TemporaryDirectory() as folder, \
            LocalService(f"sqlite:///{Path(folder) / 'toy.db'}", retry_after_seconds=0.05) as service, \
            PbtClient(service.address) as client:
        client.create_study("toy", toy.study_config(population_size=POPULATION, max_generations=GENERATIONS, seed=1))
        url = f"http://127.0.0.1:{free_port()}"
        dashboard = subprocess.Popen(
            [sys.executable, "-m", "worker_client.dashboard.cli", "--service", service.address,
             "--port", url.rsplit(":", 1)[1], "--refresh-seconds", "0.5"], cwd=ROOT,
        )  # fmt: skip
        workers = [Worker(client, "toy", train, toy.evaluate, worker_id=f"gpu-node-{i}", workdir=Path(folder) / "runs")
                   for i in range(WORKERS)]
        threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
        options = Options()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--hide-scrollbars"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            # exactly 1280x900 of page (a headless window's size includes its frame)
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
            wait_for_health(url, dashboard)
            driver.get(f"{url}/studies/toy")  # before training starts: from here on the page updates itself
            for thread in threads:
                thread.start()
            with connect(client) as results:
                while results.study("toy").summary().generations_completed < SHOOT_AT_GENERATION:
                    time.sleep(0.1)
            WebDriverWait(driver, 20).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot svg.main-svg")) >= 2)
            time.sleep(1.0)  # one more update, and the plots' transitions
            png = driver.get_screenshot_as_png()
        finally:
            driver.quit()
            for worker in workers:
                worker.shutdown("screenshot taken")
            for thread in threads:
                thread.join(timeout=30)
            dashboard.terminate()
            dashboard.wait(timeout=10)
    OUT.write_bytes(_small(png))
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size // 1024} KiB")


def _small(png: bytes) -> bytes:
    """A palette PNG (the page is flat colours), a fraction of Chromium's RGB one."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


if __name__ == "__main__":
    main()
