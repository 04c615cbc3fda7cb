"""The dashboard in Debian's headless Chromium: log in, four charts draw, the period filter changes numbers.

Leaves a screenshot in artifacts/dora-dashboard.png (the closing note and CI keep it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from iact.dora.models import Commit, Deployment, Incident, Service

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHARTS = ("chart-deployment-frequency", "chart-lead-time", "chart-change-failure-rate", "chart-mttr")
PAINTED_PIXELS = """
const c = document.getElementById(arguments[0]);
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0; for (let i = 3; i < d.length; i += 4) { if (d[i]) n++; } return n;
"""

# Where to click for the last bar with deployments: offsets from the canvas's centre, as Selenium wants.
BAR = """
const c = document.getElementById(arguments[0]);
const chart = Chart.getChart(c);
const values = chart.data.datasets[0].data;
let i = values.length - 1; while (i > 0 && !values[i]) i--;
const bar = chart.getDatasetMeta(0).data[i];
const r = c.getBoundingClientRect();
return {value: values[i], dx: Math.round(bar.x - r.width / 2), dy: Math.round((bar.y + bar.base) / 2 - r.height / 2)};
"""


@pytest.fixture(scope="module", autouse=True)
def chart_js():
    """Chart.js is fetched at build time, not committed: fetch it (pinned, integrity-checked, cached)."""
    fetched = subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch-vendor")], capture_output=True, text=True)
    assert fetched.returncode == 0, f"scripts/fetch-vendor failed: {fetched.stderr}"


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromedriver are needed: `scripts/lab deps` installs Debian's chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(arg)
    b = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    b.set_page_load_timeout(60)
    yield b
    b.quit()


def history():
    """3 deployments in the last week, 12 more before; failures and commits so every chart has data."""
    now = timezone.now()
    api, web = Service.objects.create(name="api"), Service.objects.create(name="web")
    for i in range(15):
        finished = now - timedelta(days=1 + i * 5 if i >= 3 else i + 1, hours=2)
        d = Deployment.objects.create(
            service=api if i % 2 else web,
            started_at=finished - timedelta(minutes=4),
            finished_at=finished,
            status="failed" if i % 4 == 3 else "success",
            external_id=f"b-{i}",
            url=f"https://ci.example/runs/{i}",
        )
        Commit.objects.create(
            service=d.service, sha=f"s{i}", committed_at=finished - timedelta(hours=3 + i), deployment=d
        )
        if i % 5 == 0:
            Incident.objects.create(
                service=d.service,
                deployment=d,
                opened_at=finished + timedelta(minutes=10),
                restored_at=finished + timedelta(minutes=70 + 10 * i),
                external_id=f"i-{i}",
            )


def wait(browser, condition, timeout=30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(condition)


@pytest.mark.django_db(transaction=True)
def test_login_dashboard_charts_and_period_filter(live_server, browser, django_user_model):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    history()
    django_user_model.objects.create_user("alice", "", "a good long password")
    browser.get(f"{live_server.url}/api/dora/dashboard/?period=7")
    assert "/accounts/login/" in browser.current_url
    browser.find_element(By.NAME, "username").send_keys("alice")
    browser.find_element(By.NAME, "password").send_keys("a good long password")
    browser.find_element(By.ID, "login-submit").click()
    wait(browser, lambda b: "/api/dora/dashboard/" in b.current_url)

    wait(browser, lambda b: all(b.find_element(By.ID, c).get_attribute("data-drawn") for c in CHARTS))
    for chart in CHARTS:
        assert browser.find_element(By.ID, chart).get_attribute("data-drawn") == "true", chart
        assert browser.execute_script(PAINTED_PIXELS, chart) > 500, f"{chart} drew an empty canvas"
    # One incident opened in the last 7 days (i=0): each chart marks it.
    assert all(browser.find_element(By.ID, c).get_attribute("data-markers") == "1" for c in CHARTS)
    cycles_7 = browser.find_element(By.CSS_SELECTOR, "#widget-total-cycles .value").text
    frequency_7 = browser.find_element(By.CSS_SELECTOR, "#widget-deployment-frequency .value").text
    assert cycles_7 == "3"

    # Drill-down: click the last non-empty bar; the panel lists that bucket's deployments, linked to CI.
    bar = browser.execute_script(BAR, CHARTS[0])
    canvas = browser.find_element(By.ID, CHARTS[0])
    ActionChains(browser).move_to_element_with_offset(canvas, bar["dx"], bar["dy"]).click().perform()
    panel = browser.find_element(By.ID, "drill-deployment-frequency")
    wait(browser, lambda b: panel.get_attribute("data-rows"))
    assert int(panel.get_attribute("data-rows")) == bar["value"]
    assert len(panel.find_elements(By.CSS_SELECTOR, "tr")) == bar["value"] + 1
    links = panel.find_elements(By.LINK_TEXT, "open")
    assert links and links[0].get_attribute("href").startswith("https://ci.example/")

    Select(browser.find_element(By.ID, "period")).select_by_value("90")
    wait(browser, lambda b: "period=90" in b.current_url)
    wait(browser, lambda b: b.find_element(By.ID, CHARTS[0]).get_attribute("data-drawn") == "true")
    assert browser.find_element(By.CSS_SELECTOR, "#widget-total-cycles .value").text == "15"
    assert browser.find_element(By.CSS_SELECTOR, "#widget-deployment-frequency .value").text != frequency_7
    wait(browser, lambda b: all(b.find_element(By.ID, c).get_attribute("data-drawn") == "true" for c in CHARTS))
    assert browser.find_element(By.ID, CHARTS[1]).get_attribute("data-markers") == "3"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dora-dashboard.png"))
    assert (ARTIFACTS / "dora-dashboard.png").stat().st_size > 10_000
