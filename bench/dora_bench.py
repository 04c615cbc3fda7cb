"""Benchmark of the DORA dashboard with 10,000 deployments (run on demand: `python bench/dora_bench.py`).

A real MariaDB server (Debian's mariadbd, in a temp directory) holds 10,000 production deployments
over 90 days with their commits and incidents (`iact-dora dora_seed`). Measured:
- server time of the page and of each JSON endpoint (Django's test client, median of 15 requests),
  and of the 90-day page as the first view after a write, which loads the rows again;
- full page load in headless Chromium: navigation until all four charts have drawn (median of 5).
Baseline in the same run: `/healthz`, one trip through the same Django stack and database that
computes nothing. Ratios say what the metrics themselves cost.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents" / "tests"))
os.environ["DJANGO_SETTINGS_MODULE"] = "dora_test_settings"

import django
from mariadb_server import MariaDBServer

DEPLOYMENTS = int(os.environ.get("DORA_BENCH_DEPLOYMENTS", "10000"))
CHARTS = ("chart-deployment-frequency", "chart-lead-time", "chart-change-failure-rate", "chart-mttr")


def median_ms(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of fn() in milliseconds, after one warm-up call."""
    fn()  # warm caches and connections
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def browser_load_ms(url: str, user: str, password: str, runs: int = 5) -> float | None:
    """Median time from navigation to four drawn charts, in a logged-in headless Chromium."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        print("chromium/chromedriver missing: skipping the browser measurement (scripts/lab deps installs them)")
        return None
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(arg)
    b = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))
    try:
        b.get(f"{url}/accounts/login/")
        b.find_element(By.NAME, "username").send_keys(user)
        b.find_element(By.NAME, "password").send_keys(password)
        b.find_element(By.ID, "login-submit").click()
        WebDriverWait(b, 30).until(lambda d: "/api/dora/dashboard/" in d.current_url)
        samples = []
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            b.get(f"{url}/api/dora/dashboard/?period=90")
            WebDriverWait(b, 60).until(
                lambda d: all(d.find_element(By.ID, c).get_attribute("data-drawn") == "true" for c in CHARTS)
            )
            samples.append((time.perf_counter() - t0) * 1000)
        return statistics.median(samples[1:])
    finally:
        b.quit()


def main() -> None:
    """Start MariaDB, seed, measure, clean up."""
    server = MariaDBServer(Path(tempfile.mkdtemp(prefix="iact-dora-bench-")))
    server.start()
    try:
        django.setup()
        from django.conf import settings
        from django.contrib.staticfiles.handlers import StaticFilesHandler
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client
        from django.test.testcases import LiveServerThread

        settings.DATABASES["default"]["HOST"] = server.socket
        connection.settings_dict["HOST"] = server.socket
        create = "CREATE DATABASE dora CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        subprocess.run(["mariadb", f"--socket={server.socket}", "-uroot", "-e", create], check=True)
        call_command("migrate", verbosity=0)
        t0 = time.perf_counter()
        call_command("dora_seed", "--deployments", str(DEPLOYMENTS), "--days", "90", "--services", "8")
        print(f"seeded in {time.perf_counter() - t0:.1f} s")
        from django.contrib.auth import get_user_model

        get_user_model().objects.create_user("bench", "", "bench password 123")
        client = Client()
        assert client.login(username="bench", password="bench password 123")

        def get(path: str) -> Callable[[], object]:
            return lambda: client.get(path)

        baseline = median_ms(get("/healthz"), 15)
        print(f"\nbaseline /healthz: {baseline:.1f} ms")
        print(f"{'endpoint':<58} {'ms':>8} {'x baseline':>11}")
        for path in (
            "/api/dora/dashboard/?period=7",
            "/api/dora/dashboard/?period=30",
            "/api/dora/dashboard/?period=90",
            "/api/dora/dashboard/?period=90&service=service-3",
            "/api/dora/metrics?period=90",
            "/api/dora/charts/deployment-frequency/?period=90",
            "/api/dora/charts/lead-time-trends/?period=90",
            "/api/dora/charts/change-failure-rate/?period=90",
            "/api/dora/charts/mttr/?period=90",
        ):
            ms = median_ms(get(path), 15)
            print(f"{path:<58} {ms:>8.1f} {ms / baseline:>10.1f}x")

        # The rows are kept until the next write (metrics/data.py): the first view after a deployment is
        # recorded loads them again, for its window and the previous one.
        from iact.dora.metrics import version

        def after_a_write() -> None:
            version.bump()
            client.get("/api/dora/dashboard/?period=90")

        cold = median_ms(after_a_write, 5)
        label = "/api/dora/dashboard/?period=90, first view after a write"
        print(f"{label:<58} {cold:>8.1f} {cold / baseline:>10.1f}x")

        thread = LiveServerThread("127.0.0.1", StaticFilesHandler, connections_override=None, port=0)
        thread.daemon = True
        thread.start()
        thread.is_ready.wait()
        try:
            url = f"http://127.0.0.1:{thread.port}"
            load = browser_load_ms(url, "bench", "bench password 123")
            if load is not None:
                print(f"\nfull page load in Chromium, 90 days, all four charts drawn: {load:.0f} ms (median of 5)")
        finally:
            thread.terminate()
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
