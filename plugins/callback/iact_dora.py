"""Ansible callback: record each run of site.yml as a deployment of the appliance on the DORA dashboard."""

from __future__ import annotations

DOCUMENTATION = r"""
name: iact_dora
type: notification
short_description: Record playbook runs as deployments on the IACT DORA dashboard
description:
  - At the end of a run of one of the named playbooks (site.yml by default), POSTs a deployment event to the
    dashboard's /api/dora/metrics with the run's start and end, success or failure, and the repository's HEAD commit.
  - Check-mode runs are not deployments and are not recorded. A dashboard that cannot be reached produces a
    warning, never a failed run.
  - The token only goes to the URL as configured, over HTTPS. A redirect is refused rather than followed (urllib
    would resend the Authorization header to whatever host and scheme the redirect names), and a plain http:// URL
    is refused unless allow_http says otherwise.
requirements:
  - enable it in ansible.cfg (callbacks_enabled = iact_dora) and set the URL and token
options:
  url:
    description: Base URL of the dashboard, e.g. https://dora.example.internal (https:// unless allow_http is set).
    env: [{name: IACT_DORA_URL}]
    ini: [{section: callback_iact_dora, key: url}]
    default: ""
  token:
    description: An API token of the dashboard (django_dora_api_tokens).
    env: [{name: IACT_DORA_TOKEN}]
    default: ""
  service:
    description: Service name the runs are recorded under.
    env: [{name: IACT_DORA_SERVICE}]
    ini: [{section: callback_iact_dora, key: service}]
    default: iact-appliance
  environment:
    description: Environment name (only production environments count in the four keys).
    env: [{name: IACT_DORA_ENVIRONMENT}]
    ini: [{section: callback_iact_dora, key: environment}]
    default: production
  playbooks:
    description: File names of the playbooks whose runs are deployments.
    env: [{name: IACT_DORA_PLAYBOOKS}]
    ini: [{section: callback_iact_dora, key: playbooks}]
    type: list
    default: [site.yml]
  ca_file:
    description: CA bundle to verify the dashboard's certificate; "insecure" skips verification (lab only).
    env: [{name: IACT_DORA_CA_FILE}]
    ini: [{section: callback_iact_dora, key: ca_file}]
    default: ""
  allow_http:
    description:
      - Accept a plain http:// URL (the token then crosses the network in clear). For a lab on loopback only.
    env: [{name: IACT_DORA_ALLOW_HTTP}]
    ini: [{section: callback_iact_dora, key: allow_http}]
    type: bool
    default: false
"""

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from ansible import context
from ansible.plugins.callback import CallbackBase


def _git(directory: str, *args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", directory, *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _inventory_dirs() -> list[str]:
    """The directories of the inventory sources given with -i that are paths (not `host1,host2,`)."""
    out = []
    for source in context.CLIARGS.get("inventory") or ():
        path = os.path.abspath(os.path.expanduser(str(source)))
        if os.path.exists(path):
            out.append(path if os.path.isdir(path) else os.path.dirname(path))
    return out


def _collection_version(directory: str) -> str:
    """The version in the MANIFEST.json of the installed collection holding `directory`, or "" (a clone)."""
    path = os.path.abspath(directory)
    if "ansible_collections" not in path.split(os.sep):
        return ""
    while True:
        manifest = os.path.join(path, "MANIFEST.json")
        if os.path.isfile(manifest):
            try:
                with open(manifest, encoding="utf-8") as f:
                    return str(json.load(f)["collection_info"]["version"])
            except (OSError, ValueError, KeyError, TypeError):
                return ""
        parent = os.path.dirname(path)
        if parent == path or os.path.basename(parent) == "ansible_collections":
            return ""
        path = parent


class RedirectRefused(urllib.error.URLError):
    """The dashboard answered with a redirect; following it would hand the token to the redirect's target."""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib's default handler follows 301/302/303 and keeps the Authorization header, whatever the new
    host and scheme; the dashboard's API never redirects, so any redirect is refused."""

    def redirect_request(
        self, req: urllib.request.Request, fp: object, code: int, msg: str, headers: object, newurl: str
    ) -> None:
        raise RedirectRefused(f"HTTP {code} redirect to {newurl} refused (not followed with the token)")


def url_problem(url: str, allow_http: bool) -> str:
    """Why the token must not be sent to url, or "" when it may."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "https" or (scheme == "http" and allow_http):
        return ""
    if scheme == "http":
        return (
            f"{url} is plain HTTP and would send the token in clear; use an https:// URL "
            "(IACT_DORA_ALLOW_HTTP=1, or allow_http in [callback_iact_dora], allows http:// for a lab)"
        )
    return f"{url} is not an https:// URL (e.g. https://dora.example.internal)"


class CallbackModule(CallbackBase):
    """Posts one deployment event per recorded playbook run."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "iact_dora"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._playbook = ""
        self._started = datetime.now(UTC)
        self._run_id = uuid.uuid4().hex

    def v2_playbook_on_start(self, playbook: object) -> None:
        """Note which playbook runs, and when it started."""
        self._playbook = playbook._file_name
        self._started = datetime.now(UTC)

    def v2_playbook_on_stats(self, stats: object) -> None:
        """The run is over: record it, unless it is not a deployment."""
        url, token = self.get_option("url"), self.get_option("token")
        if not url:
            return  # not configured: recording is opt-in
        if not token:
            self._display.warning("iact_dora: IACT_DORA_URL is set but IACT_DORA_TOKEN is not; the run is not recorded")
            return
        if os.path.basename(self._playbook) not in self.get_option("playbooks") or context.CLIARGS.get("check"):
            return
        problem = url_problem(url, self.get_option("allow_http"))
        if problem:
            self._display.warning(f"iact_dora: {problem}; the run is not recorded")
            return
        failed = any(stats.failures.values()) or any(stats.dark.values())
        playbook_dir = os.path.dirname(os.path.abspath(self._playbook))
        collection_version = _collection_version(playbook_dir)
        # A clone: its own commit. The installed collection is no checkout: the operator's project (inventory,
        # group_vars) holds the change being deployed, and the collection says its version. The project is the
        # inventory's repository, else the one ansible-playbook runs from (cron's may be $HOME: say so).
        directory = playbook_dir
        if collection_version:
            candidates = [*_inventory_dirs(), os.getcwd()]
            directory = next((d for d in candidates if _git(d, "rev-parse", "HEAD")), candidates[-1])
        sha = _git(directory, "rev-parse", "HEAD")
        if not sha:
            self._display.warning(
                f"iact_dora: {directory} is not in a git repository; the run is recorded without a commit "
                "(run ansible-playbook from the project's checkout, or point -i at its inventory)"
            )
        event = {
            "type": "deployment",
            "source": "ansible",
            "id": f"{os.path.basename(self._playbook)}-{self._run_id}",
            "service": self.get_option("service"),
            "environment": self.get_option("environment"),
            "version": collection_version or _git(directory, "describe", "--always", "--dirty") or sha[:12],
            "sha": sha,
            "started_at": self._started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "status": "failed" if failed else "success",
        }
        committed = _git(directory, "log", "-1", "--format=%cI")
        if sha and committed:
            event["commits"] = [{"sha": sha, "committed_at": committed}]
        self._post(url.rstrip("/") + "/api/dora/metrics", token, event)

    def _post(self, url: str, token: str, event: dict) -> None:
        ca_file = self.get_option("ca_file")
        if ca_file == "insecure":
            ssl_context = ssl._create_unverified_context()  # explicit lab opt-in
        else:
            ssl_context = ssl.create_default_context(cafile=ca_file or None)
        request = urllib.request.Request(
            url,
            data=json.dumps(event).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method="POST",
        )
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ssl_context), _RefuseRedirects())
        try:
            with opener.open(request, timeout=15) as response:
                answer = json.loads(response.read() or b"{}")
            self._display.display(f"iact_dora: recorded this run as deployment {answer.get('id')} ({event['status']})")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")[:500]
            self._display.warning(f"iact_dora: the dashboard refused the deployment (HTTP {exc.code}): {body}")
        except RedirectRefused as exc:
            self._display.warning(f"iact_dora: {url} answered with a redirect: {exc.reason}; the run is not recorded")
        except (OSError, ValueError) as exc:
            self._display.warning(f"iact_dora: could not reach {url} ({exc}); the run is not recorded")
