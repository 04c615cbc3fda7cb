"""The dashboard's cron jobs on /health/: the iact-dora-job wrapper, the status it leaves, how the page
judges it, and the role's cron file and dora.yaml, which must name the same jobs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings

from iact.dora import conf, fleet
from iact.dora.jobs import judge, run, schedule, status
from iact.yamlconfig import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "django_dora"
NOW = datetime(2031, 3, 4, 12, 0, tzinfo=UTC)


def wrapper(name: str, status_dir: Path, *command: str, **kwargs) -> subprocess.CompletedProcess:
    """iact-dora-job as cron runs it: a separate process, output captured as cron's redirection would."""
    argv = [sys.executable, "-m", "iact.dora.jobs.run", name, "--status-dir", str(status_dir), "--", *command]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, **kwargs)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def record(path: Path) -> dict:
    return json.loads(path.read_text())


# --- the wrapper -------------------------------------------------------------------------------


def test_the_wrapper_keeps_the_exit_code_passes_the_output_through_and_records_the_run(tmp_path):
    jobs = tmp_path / "jobs"
    out = wrapper("health", jobs, *py("import sys; print('checking'); print('unhealthy: disk', file=sys.stderr); "
                                       "sys.exit(3)"))  # fmt: skip
    assert out.returncode == 3, out.stderr
    assert out.stdout == "checking\nunhealthy: disk\n", "stdout and stderr pass through, merged, unchanged"
    data = record(jobs / "health.json")
    last = data["last"]
    assert (last["exit_code"], last["ok"], last["last_line"]) == (3, False, "unhealthy: disk")
    assert data["running_since"] is None and data["command"][-1].endswith("sys.exit(3)")
    started, finished = datetime.fromisoformat(last["started_at"]), datetime.fromisoformat(last["finished_at"])
    assert started <= finished and 0 <= last["duration_seconds"] < 30
    assert (jobs.stat().st_mode & 0o777, (jobs / "health.json").stat().st_mode & 0o777) == (0o755, 0o644)

    ok = wrapper("health", jobs, *py("print('all good')"))
    assert ok.returncode == 0 and ok.stdout == "all good\n"
    assert record(jobs / "health.json")["last"] | {"started_at": "", "finished_at": "", "duration_seconds": 0} == {
        "started_at": "", "finished_at": "", "duration_seconds": 0, "exit_code": 0, "ok": True, "last_line": "all good"
    }  # fmt: skip


def test_the_status_is_replaced_atomically_and_says_a_run_is_under_way(tmp_path):
    jobs = tmp_path / "jobs"
    assert wrapper("backup", jobs, *py("print('/var/backups/first.sql.gz')")).returncode == 0
    target = jobs / "backup.json"
    before = target.stat().st_ino
    with open(target) as old_reader:
        # The command reads its own status while it runs: complete, marked running, the last run kept.
        peek = f"import json; d = json.load(open({str(target)!r})); print(json.dumps(d))"
        during = wrapper("backup", jobs, *py(peek))
        assert json.loads(old_reader.read())["last"]["last_line"] == "/var/backups/first.sql.gz", (
            "a reader of the old file still sees it whole: the new one was renamed over it, not rewritten in place"
        )
    seen = json.loads(during.stdout)
    assert seen["running_since"] and seen["last"]["last_line"] == "/var/backups/first.sql.gz"
    assert target.stat().st_ino != before
    assert sorted(p.name for p in jobs.iterdir()) == ["backup.json"], "no temporary file left behind"
    assert record(target)["running_since"] is None


def test_a_failed_write_leaves_the_old_status_and_no_temporary_file(tmp_path, monkeypatch):
    directory = status.StatusDir(str(tmp_path / "jobs"))
    first = status.Record("backup", ("iact-dora-backup",), None, status.Run(NOW, NOW, 1.0, 0, "done"))
    directory.write(first)

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", full_disk)
    with pytest.raises(OSError):
        directory.write(dataclasses.replace(first, running_since=NOW))
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == ["backup.json"]
    assert status.load(str(tmp_path / "jobs" / "backup.json")) == first


def test_a_planted_symlink_is_refused_and_the_job_still_runs(tmp_path):
    jobs, victim = tmp_path / "jobs", tmp_path / "shadow"
    jobs.mkdir(mode=0o755)
    victim.write_text("root:x:0:\n")
    (jobs / "backup.json").symlink_to(victim)
    out = wrapper("backup", jobs, *py("print('dumped')"))
    assert out.returncode == 0 and out.stdout == "dumped\n"
    assert "symbolic link: refusing to replace it" in out.stderr
    assert victim.read_text() == "root:x:0:\n" and (jobs / "backup.json").is_symlink()
    assert sorted(p.name for p in jobs.iterdir()) == ["backup.json"]


def test_a_status_directory_that_is_a_link_or_writable_by_others_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    (tmp_path / "link").symlink_to(real)
    out = wrapper("backup", tmp_path / "link", *py("raise SystemExit(4)"))
    assert out.returncode == 4 and "is a symbolic link or not a directory" in out.stderr
    assert list(real.iterdir()) == []
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    out = wrapper("backup", shared, *py("pass"))
    assert out.returncode == 0 and "writable by group or others" in out.stderr and list(shared.iterdir()) == []


def test_a_directory_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    # Root's backup must never record in the service user's directory (a swapped entry there would take
    # root's write anywhere). Here the directory is ours and the process claims to be someone else.
    (tmp_path / "jobs").mkdir(mode=0o755)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(tmp_path).st_uid + 4242)
    with pytest.raises(status.StatusError, match="not by this job's user"):
        status.StatusDir(str(tmp_path / "jobs"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the directory to another user")
def test_root_refuses_the_service_users_directory(tmp_path):
    service = tmp_path / "jobs"
    service.mkdir(mode=0o755)
    os.chown(service, 65534, 65534)
    out = wrapper("backup", service, *py("pass"))
    assert out.returncode == 0 and "owned by uid 65534" in out.stderr and list(service.iterdir()) == []


def test_usage_errors_run_nothing(tmp_path):
    marker = tmp_path / "ran"
    touch = py(f"open({str(marker)!r}, 'w')")
    no_separator = subprocess.run([sys.executable, "-m", "iact.dora.jobs.run", "backup", "--status-dir",
                                   str(tmp_path), *touch], capture_output=True, text=True, check=False)  # fmt: skip
    assert no_separator.returncode == 2 and "unrecognized arguments" in no_separator.stderr
    nothing = wrapper("backup", tmp_path)
    assert nothing.returncode == 2 and "put the command after --" in nothing.stderr
    bad_name = wrapper("../etc/passwd", tmp_path, *touch)
    assert bad_name.returncode == 2 and "NAME" in bad_name.stderr
    assert not marker.exists()


def test_a_missing_command_and_a_killed_one_are_recorded(tmp_path):
    missing = wrapper("sessions", tmp_path / "jobs", "/nonexistent/iact-dora", "clearsessions")
    assert missing.returncode == 127 and "command not found: /nonexistent/iact-dora" in missing.stderr
    assert record(tmp_path / "jobs" / "sessions.json")["last"]["last_line"].startswith("command not found: /nonexist")
    killed = wrapper("sessions", tmp_path / "jobs", *py("import os, signal; print('half way', flush=True); "
                                                        "os.kill(os.getpid(), signal.SIGKILL)"))  # fmt: skip
    assert killed.returncode == 128 + signal.SIGKILL
    last = record(tmp_path / "jobs" / "sessions.json")["last"]
    assert (last["exit_code"], last["last_line"]) == (137, "killed by SIGKILL after: half way")


def test_sigterm_reaches_the_command_and_the_run_is_still_recorded(tmp_path):
    argv = [sys.executable, "-m", "iact.dora.jobs.run", "backup", "--status-dir", str(tmp_path / "jobs"), "--",
            *py("import time; print('up', flush=True); time.sleep(60)")]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert record(tmp_path / "jobs" / "backup.json")["last"]["last_line"] == "killed by SIGTERM after: up"


def test_the_last_line_is_the_last_non_blank_one_and_short():
    assert run.last_line(b"first\nsecond\n\n  \n") == "second"
    assert run.last_line(b"") == "" and len(run.last_line(b"x" * 5000)) == run.LINE_LIMIT


def test_the_console_script_is_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["iact-dora-job"] == "iact.dora.jobs.run:entry_point"


# --- schedule and judgement --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "gap"),
    [
        ("15 */6 * * *", timedelta(hours=6)),
        ("*/5 * * * *", timedelta(minutes=5)),
        ("0 2 * * *", timedelta(days=1)),
        ("0,30 8-17 * * *", timedelta(hours=14, minutes=30)),
        ("*/7 * * * *", timedelta(minutes=7)),
        ("*/60 * * * *", timedelta(hours=1)),
    ],
)
def test_the_period_is_the_schedules_longest_gap(cron, gap):
    assert schedule.longest_gap(cron) == gap


@pytest.mark.parametrize("cron", ["@daily", "0 2 1 * *", "61 * * * *", "a * * * *", "0 */0 * * *", "5/2 * * * *"])
def test_schedules_the_page_cannot_judge_are_refused(cron):
    with pytest.raises(schedule.ScheduleError):
        schedule.longest_gap(cron)


JOB = conf.JobConfig("sessions", "Session cleanup", "15 */6 * * *", "/nonexistent/sessions.json", "/var/log/j.log")


def finished(ago: timedelta, code: int = 0, line: str = "done", took: float = 2.5) -> status.Record:
    start = NOW - ago
    return status.Record("sessions", ("iact-dora", "clearsessions"), None,
                         status.Run(start, start + timedelta(seconds=took), took, code, line))  # fmt: skip


def test_a_recent_successful_run_is_green_with_its_times():
    line = judge.judge(JOB, finished(timedelta(hours=5)), NOW)
    assert (line.state, line.result, line.duration) == ("green", "ok", "2.5 s")
    assert line.started_at == "2031-03-04 07:00:00 UTC" and line.finished_at == "2031-03-04 07:00:02 UTC"
    assert "ran on time" in line.reason and line.command == "iact-dora clearsessions"


def test_a_failed_run_is_red_with_the_last_line_of_its_output():
    line = judge.judge(JOB, finished(timedelta(hours=1), code=1, line="OperationalError: (2002) no socket"), NOW)
    assert line.state == "red" and line.result == "failed (exit 1)"
    assert "last run failed (exit 1): OperationalError: (2002) no socket" in line.reason
    assert line.last_line == "OperationalError: (2002) no socket"


def test_a_job_that_missed_its_period_is_amber():
    assert judge.judge(JOB, finished(timedelta(hours=6, minutes=30)), NOW).state == "green", "within the grace"
    late = judge.judge(JOB, finished(timedelta(hours=7)), NOW)
    assert late.state == "amber" and "no run since 2031-03-04 05:00:00 UTC (7 h ago; due every 6 h)" in late.reason
    both = judge.judge(JOB, finished(timedelta(days=2), code=2), NOW)
    assert both.state == "red" and "last run failed" in both.reason and "no run since" in both.reason


def test_never_ran_is_said_plainly():
    line = judge.judge(JOB, None, NOW)
    assert line.state == "amber" and line.result == "never ran" and line.reason.startswith("never ran: no status in")
    assert "/var/log/j.log" in line.reason and line.started_at == ""


def test_a_run_under_way_is_shown_and_turns_amber_when_it_outlasts_the_period():
    previous = finished(timedelta(hours=6))
    running = dataclasses.replace(previous, running_since=NOW - timedelta(minutes=1))
    line = judge.judge(JOB, running, NOW)
    assert line.state == "green" and "running since 2031-03-04 11:59:00 UTC" in line.reason and line.result == "ok"
    stuck = dataclasses.replace(finished(timedelta(hours=14)), running_since=NOW - timedelta(hours=8))
    line = judge.judge(JOB, stuck, NOW)
    assert line.state == "amber" and "running since 2031-03-04 04:00:00 UTC (8 h), longer than its 6 h period" in (
        line.reason
    )
    first = status.Record("sessions", ("iact-dora",), NOW - timedelta(minutes=1), None)
    assert judge.judge(JOB, first, NOW).result == "first run under way"


def test_an_unreadable_status_is_amber_and_says_why(tmp_path):
    broken = tmp_path / "sessions.json"
    broken.write_text("{not json")
    line = judge.lines((dataclasses.replace(JOB, status_file=str(broken)),), NOW)[0]
    assert (line.state, line.result) == ("amber", "status unreadable")
    assert "the next run of the job replaces it" in line.reason


# --- configuration -----------------------------------------------------------------------------


def test_the_jobs_section_is_validated():
    jobs = [{"name": "backup", "title": "Database backup", "schedule": "30 3 * * *", "status_file": "/s/backup.json"}]
    assert conf.from_mapping({"secret_key": "x", "jobs": jobs}).jobs[0].period == timedelta(days=1)
    assert conf.from_mapping({"secret_key": "x", "jobs": []}).jobs == ()
    assert conf.from_mapping({"secret_key": "x"}).jobs == conf.DEFAULT_JOBS
    with pytest.raises(ConfigError, match=r"jobs\[0\]\.schedule: .*only the minute and hour"):
        conf.from_mapping({"secret_key": "x", "jobs": [jobs[0] | {"schedule": "0 3 * * 1"}]})
    with pytest.raises(ConfigError, match=r"jobs\[1\]\.name"):
        conf.from_mapping({"secret_key": "x", "jobs": jobs * 2})
    with pytest.raises(ConfigError, match=r"jobs\[0\]\.user: unknown key"):
        conf.from_mapping({"secret_key": "x", "jobs": [jobs[0] | {"user": "root"}]})


# --- the role's cron file and dora.yaml ----------------------------------------------------------

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [{defaults}, {vars}]
  tasks:
    - ansible.builtin.template: {{src: "{templates}/{{{{ item }}}}.j2", dest: "{out}/{{{{ item }}}}", mode: "0600"}}
      loop: [cron, dora.yaml]
"""


def render(tmp_path: Path, **role_vars: object) -> tuple[str, dict]:
    """cron.j2 and dora.yaml.j2 rendered by Ansible with the role's defaults and these variables."""
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(defaults=ROLE / "defaults/main.yml", vars=ROLE / "vars/main.yml",
                                templates=ROLE / "templates", out=tmp_path))  # fmt: skip
    extra = {"_django_dora_mysql_socket": "/run/mysqld/mysqld.sock", "ansible_python_interpreter": sys.executable}
    (tmp_path / "extra.json").write_text(json.dumps(extra | role_vars))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IACT_DORA_")}  # the callback stays quiet
    playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    out = subprocess.run([playbook, "-i", "localhost,", str(play), "-e", f"@{tmp_path / 'extra.json'}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    (tmp_path / "secret_key").write_text("test-only-secret\n")
    return (tmp_path / "cron").read_text(), yaml.safe_load((tmp_path / "dora.yaml").read_text())


CRON_LINE = re.compile(r"^(?P<schedule>(?:\S+ ){5})(?P<user>\S+) (?P<rest>.*)$")


def cron_jobs(cron: str) -> dict[str, dict[str, str]]:
    jobs = {}
    for line in cron.splitlines():
        if not line or line.startswith("#") or "=" in line.split()[0]:
            continue
        m = CRON_LINE.match(line)
        assert m, line
        words = shlex.split(m["rest"])
        runner, name, option, status_dir, separator = words[:5]
        redirect = words.index(">>")
        assert (option, separator) == ("--status-dir", "--") and words[redirect + 2 : redirect + 4] == ["2>&1", "||"]
        jobs[name] = {"schedule": m["schedule"].strip(), "user": m["user"], "runner": runner, "status_dir": status_dir,
                      "command": " ".join(words[5:redirect]), "log": words[redirect + 1]}  # fmt: skip
    return jobs


def test_the_cron_file_and_dora_yaml_name_the_same_jobs_with_the_dashboards_defaults(tmp_path):
    cron, dora_yaml = render(tmp_path, django_dora_config_dir=str(tmp_path))
    jobs = cron_jobs(cron)
    assert {n: (j["user"], j["command"]) for n, j in jobs.items()} == {
        "sessions": ("iact-dora", "iact-dora clearsessions"),
        "health": ("iact-dora", "iact-dora dora_health"),
        "backup": ("root", "iact-dora-backup"),
    }
    assert {j["runner"] for j in jobs.values()} == {"/opt/iact/dora/venv/bin/iact-dora-job"}
    configured = conf.from_mapping(dora_yaml).jobs
    assert configured == conf.DEFAULT_JOBS, "the dashboard's defaults are the role's"
    for job in configured:
        assert (job.schedule, job.status_file, job.log_file) == (
            jobs[job.name]["schedule"], f"{jobs[job.name]['status_dir']}/{job.name}.json", jobs[job.name]["log"]
        )  # fmt: skip
    backup = jobs["backup"]
    assert backup["status_dir"] == "/var/lib/iact/dora-backup", "root-owned, outside the service user's state"
    assert not backup["log"].startswith("/var/log/iact/dora/"), "root writes nothing in the service user's directories"


def test_a_rendered_cron_line_runs_records_and_still_echoes_a_failure(tmp_path):
    # The health line as cron runs it (sh -c), with the wrapper of this checkout and a failing health check.
    bin_dir, logs, state = tmp_path / "bin", tmp_path / "logs", tmp_path / "state"
    for d in (bin_dir, logs, state):
        d.mkdir(mode=0o755)
    runner = bin_dir / "iact-dora-job"
    runner.write_text(f'#!/bin/sh\nexec {sys.executable} -m iact.dora.jobs.run "$@"\n')
    fake = bin_dir / "iact-dora"
    fake.write_text("#!/bin/sh\necho ok database\necho 'CommandError: unhealthy: see health.json' >&2\nexit 1\n")
    for f in (runner, fake):
        f.chmod(0o755)
    cron, dora_yaml = render(tmp_path, django_dora_config_dir=str(tmp_path), _django_dora_job_runner=str(runner),
                             django_dora_log_dir=str(logs), django_dora_state_dir=str(state))  # fmt: skip
    line = next(li for li in cron.splitlines() if " dora_health " in li)
    command = line.split(None, 6)[6]
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(ROOT / "agents")}
    out = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, check=False)
    assert out.stdout.startswith("iact-dora health check failed"), "cron mails this line"
    assert (logs / "health.log").read_text() == "ok database\nCommandError: unhealthy: see health.json\n"
    health = next(j for j in conf.from_mapping(dora_yaml).jobs if j.name == "health")
    shown = judge.lines((health,))[0]
    assert shown.state == "red" and shown.last_line == "CommandError: unhealthy: see health.json"


# --- the page ------------------------------------------------------------------------------------


def test_alert_runs_say_when_none_ever_ran():
    class Rows:
        def execute(self, _query):
            return [type("Row", (), {"name": "lease:alerting", "last_run_at": NOW, "last_status": "ok"})()]

    items = fleet.alert_runs(Rows(), "logging", NOW)
    assert [(i.kind, i.state) for i in items] == [("alerting", "amber")] and "never ran" in items[0].reason


@pytest.mark.django_db
def test_the_page_shows_each_job_green_amber_red_or_never_ran_and_the_last_alert_run(tmp_path):
    now = datetime.now(UTC)
    jobs_dir = status.StatusDir(str(tmp_path / "jobs"))
    ran = {  # green; amber, being due every 5 minutes; red
        "sessions": (timedelta(hours=1), 0, "Deleted 3 sessions"),
        "health": (timedelta(hours=1), 0, "ok   fleet      green, 4 item(s)"),
        "backup": (timedelta(hours=3), 1, "mariadb-dump: Got error: 2002"),
    }
    for name, (ago, code, line) in ran.items():
        start = now - ago
        end = start + timedelta(seconds=61)
        jobs_dir.write(status.Record(name, (name,), None, status.Run(start, end, 61, code, line)))
    jobs = (
        *(dataclasses.replace(j, status_file=str(tmp_path / "jobs" / f"{j.name}.json")) for j in conf.DEFAULT_JOBS),
        conf.JobConfig("extra", "Never run", "0 4 * * *", str(tmp_path / "jobs" / "extra.json")),
    )
    health_file = tmp_path / "health.json"
    alert = fleet.Item("alerting", "iact-alert", "green", "evaluated on time",
                       {"last_run_at": "2031-03-04T11:58:00+00:00", "status": "ok"})  # fmt: skip
    fleet.write(tmp_path / "fleet.json", {"taken_at": now.isoformat(), "state": "green",
                                          "items": [dataclasses.asdict(alert)]})  # fmt: skip
    client = Client()
    client.force_login(User.objects.create_user("ops", password="correct horse battery"))
    health = dataclasses.replace(settings.DORA_HEALTH, status_file=str(health_file))
    with override_settings(DORA_JOBS=jobs, DORA_HEALTH=health):
        client.get("/health/")  # templates compiled, session warm
        started = time.perf_counter()
        html = client.get("/health/").content.decode()
        took = time.perf_counter() - started
    states = dict(re.findall(r'data-job="([^"]+)" data-state="(\w+)"', html))
    assert states == {"sessions": "green", "health": "amber", "backup": "red", "extra": "amber"}
    assert "Deleted 3 sessions" in html and "1 min 1 s" in html and "mariadb-dump: Got error: 2002" in html
    assert "failed (exit 1)" in html and '<td colspan="5" class="result">never ran</td>' in html
    assert 'data-kind="alerting" data-name="iact-alert" data-state="green"' in html
    assert "last_run_at 2031-03-04T11:58:00+00:00" in html, "the last alert run is on the page"
    assert took < 1, f"/health/ took {took:.3f} s: it must only read files"
