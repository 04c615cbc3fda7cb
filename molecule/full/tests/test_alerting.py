"""Alerting on the lab: scheduled on the app host only; an ERROR burst fires once, then resolves once."""

import json
import uuid

import pytest
import testinfra
from conftest import NODES, wait_until

ALERT = "/opt/iact/alerting/venv/bin/iact-alert --config /etc/iact/alerting.yaml"
ALERT_LOG = "/var/log/iact/log_alerts.log"


def test_scheduled_on_the_app_host_only_by_the_hardened_timer():
    for name in NODES:
        node = testinfra.get_host(f"podman://{name}")
        assert not node.file("/etc/cron.d/iact-alert").exists, name
        assert not node.file("/etc/systemd/system/iact-alert.timer").exists, name
    dora = testinfra.get_host("podman://app1")
    conf = dora.file("/etc/iact/alerting.yaml")
    assert (conf.user, conf.group, conf.mode) == ("root", "iact-alert", 0o640)
    assert dora.run(f"{ALERT} check-config").rc == 0
    # The default schedule is the timer, not cron: no unsandboxed path is left behind.
    assert not dora.file("/etc/cron.d/iact-alert").exists
    timer = dora.service("iact-alert.timer")
    assert timer.is_enabled and timer.is_running


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("User", "iact-alert"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("ReadWritePaths", "/var/log/iact"),
    ],
)
def test_alert_job_runs_hardened(prop, value):
    dora = testinfra.get_host("podman://app1")
    shown = dora.check_output(f"systemctl show -p {prop} --value iact-alert.service")
    assert sorted(shown.split()) == sorted(value.split())  # systemd lists address families in its own order


def test_alert_job_has_run_under_the_timer_and_succeeded():
    dora = testinfra.get_host("podman://app1")

    def show(prop: str) -> str:
        return dora.check_output(f"systemctl show -p {prop} --value iact-alert.service")

    def ran():
        return show("ExecMainExitTimestampMonotonic") not in ("", "0") and show("ExecMainStatus")

    assert wait_until(ran, 150, "a finished run of iact-alert.service", interval=5) == "0", "the last run failed"


def test_logrotate_rotates_the_run_log_as_the_service_user():
    stanzas = testinfra.get_host("podman://app1").file("/etc/logrotate.d/iact-alert").content_string
    run_log = stanzas[stanzas.index("/var/log/iact/alerting/iact-alert.log") :]
    assert "su iact-alert adm" in run_log.split("}")[0]


def notices(dora, since_line: int) -> list[dict]:
    lines = dora.file(ALERT_LOG).content_string.splitlines()[since_line:] if dora.file(ALERT_LOG).exists else []
    return [n for n in (json.loads(x) for x in lines if x.strip()) if n["rule"] == "infra-errors"]


def evaluate(dora) -> None:
    """One evaluation now, as the timer would start it: the timer itself is tested above, and waiting
    for its next tick would only add up to a minute per step."""
    started = dora.run("systemctl start iact-alert.service")
    assert started.rc == 0, dora.run("journalctl -u iact-alert.service -n 20 --no-pager -o cat").stdout


def test_error_burst_fires_once_then_resolves_once():
    dora = testinfra.get_host("podman://app1")
    cass2 = testinfra.get_host("podman://cass2")

    def firing_now() -> bool:
        out = dora.run(f"sudo -u iact-alert {ALERT} status").stdout
        rows = [line.split() for line in out.splitlines() if line.startswith("infra-errors ")]
        return bool(rows) and rows[0][-1] != "-"

    # Let an earlier firing (from converge noise) resolve first, so this burst starts from a quiet state.
    def quiet():
        evaluate(dora)
        return not firing_now()

    wait_until(quiet, 180, "infra-errors not firing before the burst", interval=5)
    start = len(dora.file(ALERT_LOG).content_string.splitlines()) if dora.file(ALERT_LOG).exists else 0
    marker = uuid.uuid4().hex[:8]
    # One exec, so the burst takes well under a second. The lab's windows are one minute long and end
    # on each minute: a burst split by a minute boundary leaves at least 13 of its 25 lines on one side.
    burst = cass2.run(f'for i in $(seq 0 24); do logger -p user.err -t burst "burst {marker} $i"; done')
    assert burst.rc == 0, burst.stderr

    def fired():
        evaluate(dora)
        return [n for n in notices(dora, start) if n["status"] == "firing"] or None

    firing = wait_until(fired, 180, f"the burst in {ALERT_LOG}", interval=5)
    assert firing[0]["count"] > 10 and "SELECT" in firing[0]["query"], firing[0]
    assert any(marker in s for s in firing[0]["samples"]), firing[0]["samples"]

    def resolved():
        evaluate(dora)
        return [n for n in notices(dora, start) if n["status"] == "resolved"] or None

    wait_until(resolved, 240, "the resolved notice once the window has passed", interval=5)
    after = notices(dora, start)
    assert [n["status"] for n in after] == ["firing", "resolved"], after
