"""The Ansible callback records site.yml runs on a live dashboard (real ansible-playbook, real HTTP)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from iact.dora.models import ApiToken, Deployment, hash_token

ROOT = Path(__file__).resolve().parents[2]
PLAY = """- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.command: {command}
      changed_when: false
"""


TOKEN = "a-token-for-the-callback"


def run(tmp_path, name, url, command="/bin/true", check=False, allow_http=True, inventory="localhost,"):
    (tmp_path / name).write_text(PLAY.format(command=command))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IACT_DORA_")} | {
        "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "plugins" / "callback"),
        "ANSIBLE_CALLBACKS_ENABLED": "iact_dora",
        "IACT_DORA_URL": url,
        "IACT_DORA_TOKEN": TOKEN,
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    if allow_http:  # the loopback servers here speak plain HTTP: the lab opt-in
        env["IACT_DORA_ALLOW_HTTP"] = "1"
    args = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        inventory,
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        name,
    ] + (["--check"] if check else [])
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.django_db(transaction=True)
def test_each_site_yml_run_becomes_one_deployment(live_server, tmp_path):
    ApiToken.objects.create(name="ansible", digest=hash_token(TOKEN))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "README").write_text("x")
    subprocess.run([*git, "-C", str(tmp_path), "add", "README"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "first"], check=True)

    ok = run(tmp_path, "site.yml", live_server.url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "iact_dora: recorded this run" in ok.stdout
    failed = run(tmp_path, "site.yml", live_server.url, command="/bin/false")
    assert failed.returncode == 2
    assert run(tmp_path, "site.yml", live_server.url, check=True).returncode == 0  # check mode: not a deployment
    assert run(tmp_path, "other.yml", live_server.url).returncode == 0  # not site.yml
    unreachable = run(tmp_path, "site.yml", "http://127.0.0.1:9")  # nothing listens: a warning, not a failure
    assert unreachable.returncode == 0 and "could not reach" in unreachable.stderr + unreachable.stdout

    runs = list(Deployment.objects.filter(source="ansible").order_by("finished_at"))
    assert [d.status for d in runs] == ["success", "failed"]
    assert {d.service.name for d in runs} == {"iact-appliance"}
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert runs[0].sha == head and runs[0].commits.get().sha == head


class Recorder:
    """A loopback HTTP server that answers every request with a fixed status and notes what it got."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.bodies: list[bytes] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorder.bodies.append(self.rfile.read(length))
                recorder.requests.append((self.command, self.path, dict(self.headers)))
                body = b'{"id": 1}'
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[Recorder]:
    """Where a hostile dashboard would redirect the callback (a host that must never see the token)."""
    with Recorder(200) as server:
        yield server


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_refused_and_the_token_never_reaches_its_target(tmp_path, target, code):
    with Recorder(code, {"Location": f"{target.url}/api/dora/metrics"}) as dashboard:
        out = run(tmp_path, "site.yml", dashboard.url)
    output = out.stdout + out.stderr
    assert out.returncode == 0, output  # a warning, never a failed run
    assert [(m, p) for m, p, _ in dashboard.requests] == [("POST", "/api/dora/metrics")]
    assert dashboard.requests[0][2]["Authorization"] == f"Bearer {TOKEN}"
    assert target.requests == [], "the callback followed the redirect"
    assert "redirect" in output and "not recorded" in output, output
    assert TOKEN not in output


def test_plain_http_is_refused_unless_allowed(tmp_path, target):
    out = run(tmp_path, "site.yml", target.url, allow_http=False)
    output = out.stdout + out.stderr
    assert out.returncode == 0, output
    assert target.requests == [], "the token went out over plain HTTP"
    assert "IACT_DORA_ALLOW_HTTP" in output and "https://" in output, output

    allowed = run(tmp_path, "site.yml", target.url)
    assert allowed.returncode == 0 and len(target.requests) == 1, allowed.stdout + allowed.stderr


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "127.0.0.1:8000"])
def test_a_url_that_is_not_http_or_https_is_refused(tmp_path, url):
    out = run(tmp_path, "site.yml", url)
    output = out.stdout + out.stderr
    assert out.returncode == 0, output
    assert "https://" in output and "not recorded" in output, output


def test_run_from_the_installed_collection_records_its_version_and_the_projects_commit(tmp_path):
    """`ansible-playbook iact.observability.site` runs a playbook inside the installed collection, which is no
    git checkout: the version is the collection's, the commit the operator's project's (where it runs from)."""
    import json

    collection = tmp_path / "collections" / "ansible_collections" / "iact" / "observability"
    (collection / "playbooks").mkdir(parents=True)
    (collection / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": "9.8.7"}}))
    project = tmp_path / "project"
    project.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(project)]
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    (project / "hosts.yml").write_text("all: {}\n")
    subprocess.run([*git, "add", "hosts.yml"], check=True)
    subprocess.run([*git, "commit", "-qm", "inventory"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    with Recorder(201) as dashboard:
        (collection / "playbooks" / "site.yml").write_text(PLAY.format(command="/bin/true"))
        result = run(project, str(collection / "playbooks" / "site.yml"), dashboard.url)
        # From elsewhere (cron runs in $HOME), with the project's inventory: the inventory's repository.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (project / "hosts.yml").write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
        from_cron = run(elsewhere, str(collection / "playbooks" / "site.yml"), dashboard.url,
                        inventory=str(project / "hosts.yml"))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert from_cron.returncode == 0, from_cron.stdout + from_cron.stderr
    first, second = (json.loads(b) for b in dashboard.bodies)
    assert (first["version"], first["sha"]) == ("9.8.7", head)
    assert [c["sha"] for c in first["commits"]] == [head]
    assert second["sha"] == head, "the inventory's repository, not the directory cron ran it from"
