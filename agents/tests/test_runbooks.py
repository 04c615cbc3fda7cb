"""Every alert, every operations check and every common failure has a runbook, and the messages link to it.

What this enumerates, so that a new rule or check without a runbook fails here:
- built-in alert rules: `iact.alerting.rules.BUILTIN` (runbook docs/runbooks/alert-<rule>.md);
- the checks of playbooks/health.yml and playbooks/compliance.yml: every `result(...)` call in the
  host-side scripts the playbooks run (found by parsing their source, f-strings turned into sample
  names), every `'check':` row the playbooks' YAML builds itself, and the report's `<title> ran` row;
  each must match an entry of the registry playbooks/vars/runbooks.yml, which tasks/report.yml reads;
- the common failures listed in that registry.
A runbook page must hold the four sections, in order, each with text. The links in an alert's text
(through the engine) and in the playbooks' FAIL lines (through tasks/report.yml, run on localhost
with made-up rows) must point at existing pages.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest
import yaml

from iact.alerting.config import from_mapping
from iact.alerting.engine import Evaluator
from iact.alerting.query import WindowCounts
from iact.alerting.rules import BUILTIN, parse_rules
from iact.alerting.runbooks import RUNBOOK_DIR, runbook_file, runbook_link

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / RUNBOOK_DIR
PLAYBOOKS = REPO / "playbooks"
REGISTRY = PLAYBOOKS / "vars" / "runbooks.yml"
CHECKED_PLAYBOOKS = ("health", "compliance")
SECTIONS = ("## What it means", "## Confirm", "## Fix", "## Verify")
# The common failures the runbooks must cover (issue 20), by the runbook that covers each.
COMMON_FAILURES = {
    "agent-lag": "an agent with growing lag",
    "agent-spool": "a full spool",
    "cassandra-node-down": "a node DN",
    "cassandra-hints": "hints piling up",
    "backup-failed": "a failed backup",
    "certificate-expiring": "an expiring certificate",
}


def registry() -> dict:
    return yaml.safe_load(REGISTRY.read_text())


# --- the checks, as the playbooks can print them -------------------------------------------------


def _sample(node: ast.expr, assigned: dict[str, ast.expr]) -> str | None:
    """A check name as it prints: a string, or an f-string with each placeholder as `X`."""
    if isinstance(node, ast.Name) and node.id in assigned:
        return _sample(assigned[node.id], {})
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
    return None


def script_checks(path: Path) -> list[str]:
    """Every check name a host-side script can emit: the first argument of each `result(...)` call."""
    names = []
    for fn in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(fn, ast.FunctionDef):
            continue
        assigned = {
            t.id: a.value
            for a in ast.walk(fn)
            if isinstance(a, ast.Assign)
            for t in a.targets
            if isinstance(t, ast.Name)
        }
        for call in ast.walk(fn):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "result":
                name = _sample(call.args[0], assigned) if call.args else None
                assert name is not None, f"{path.name}:{call.lineno}: cannot read the check's name; give a string"
                names.append(name)
    return names


def _strings(node: object):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def yaml_checks(path: Path) -> list[str]:
    """Rows a playbook builds in Jinja (`'check': <expression>, 'ok': ...`), rendered with sample values."""
    env = jinja2.Environment(undefined=jinja2.ChainableUndefined)
    names = []
    for text in _strings(yaml.safe_load(path.read_text())):
        for expr in re.findall(r"'check':\s*(.*?),\s*'ok':", text, re.S):
            names.append(env.compile_expression(expr)(_health_cert_min_days=30, compliance_cert_min_days=30))
    return names


def playbook_checks(playbook: str) -> list[str]:
    """Every check `playbooks/<playbook>.yml` can print: its scripts' rows, its own rows, the report's."""
    path = PLAYBOOKS / f"{playbook}.yml"
    scripts = sorted(set(re.findall(r"files/(\w+\.py)", path.read_text())))
    assert scripts, f"{path.name} runs no host-side check script any more; update this test"
    names = [n for s in scripts for n in script_checks(PLAYBOOKS / "files" / s)]
    names += yaml_checks(path)
    assert "report_title ~ ' ran'" in (PLAYBOOKS / "tasks" / "report.yml").read_text()
    names.append(f"{playbook} ran")  # the row tasks/report.yml adds for a host without results
    return list(dict.fromkeys(names))


def runbook_for(playbook: str, check: str, entries: list[dict] | None = None) -> str | None:
    """The registry's runbook for a check, first match wins (as tasks/report.yml does)."""
    for e in entries if entries is not None else registry()["runbook_checks"]:
        if e["playbook"] == playbook and re.search(e["match"], check):
            return e["runbook"]
    return None


def page_problems(name: str) -> list[str]:
    """What is wrong with docs/runbooks/<name>.md: missing, or a section missing, empty or out of order."""
    path = RUNBOOKS / f"{name}.md"
    if not path.is_file():
        return [f"{path.relative_to(REPO)} does not exist"]
    text = path.read_text()
    problems, at = [], -1
    for heading in SECTIONS:
        found = re.search(rf"^{re.escape(heading)}\s*$", text, re.M)
        if not found:
            problems.append(f"{path.name}: no '{heading}' section")
            continue
        if found.start() < at:
            problems.append(f"{path.name}: '{heading}' is out of order")
        at = found.start()
        nxt = re.search(r"^## ", text[found.end() :], re.M)
        body = text[found.end() : found.end() + nxt.start()] if nxt else text[found.end() :]
        if not body.strip():
            problems.append(f"{path.name}: '{heading}' is empty")
    if not text.startswith("# "):
        problems.append(f"{path.name}: no title")
    return problems


CHECKS = [(p, c) for p in CHECKED_PLAYBOOKS for c in playbook_checks(p)]


# --- the registry and the pages --------------------------------------------------------------------


@pytest.mark.parametrize(("playbook", "check"), CHECKS, ids=[f"{p}:{c}" for p, c in CHECKS])
def test_every_check_of_the_playbooks_has_a_runbook(playbook, check):
    name = runbook_for(playbook, check)
    assert name, f"{playbook}.yml check {check!r} has no entry in {REGISTRY.relative_to(REPO)}; add one and its page"
    assert not page_problems(name)


def test_the_playbooks_have_the_checks_this_test_expects():
    # A parsing slip would make the parametrized test above pass vacuously.
    health, compliance = (dict.fromkeys(playbook_checks(p)) for p in CHECKED_PLAYBOOKS)
    assert {"Cassandra node is UN", "agent lag", "agent spool empty", "last alert run", "disk X"} <= set(health)
    assert "certificate on 9042 valid for 30+ days" in health
    assert {"only expected services listen", "X runs as X", "JMX of X not reachable from here (X:X)"} <= set(compliance)
    assert len(health) >= 11 and len(compliance) >= 18


def test_every_registry_entry_matches_a_check():
    checks = {p: playbook_checks(p) for p in CHECKED_PLAYBOOKS}
    entries = registry()["runbook_checks"]
    stale = [e for e in entries if not any(re.search(e["match"], c) for c in checks[e["playbook"]])]
    assert not stale, f"entries of {REGISTRY.name} that match no check any more: {stale}"


def test_every_common_failure_has_a_runbook():
    listed = {e["runbook"]: e["failure"] for e in registry()["runbook_failures"]}
    assert set(COMMON_FAILURES) <= set(listed), f"common failures missing from {REGISTRY.name}"
    problems = [p for name in listed for p in page_problems(name)]
    assert not problems, problems


@pytest.mark.parametrize("rule", [r["name"] for r in BUILTIN])
def test_every_builtin_rule_has_a_runbook(rule):
    assert runbook_link(rule) == f"docs/runbooks/{runbook_file(rule)}"
    assert not page_problems(Path(runbook_file(rule)).stem)


def test_every_page_is_listed_in_the_index_and_its_links_resolve():
    index = (RUNBOOKS / "README.md").read_text()
    pages = sorted(p.name for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
    unlisted = [p for p in pages if f"]({p})" not in index]
    assert not unlisted, f"add these to docs/runbooks/README.md: {unlisted}"
    used = {e["runbook"] for e in registry()["runbook_checks"] + registry()["runbook_failures"]}
    used |= {Path(runbook_file(r["name"])).stem for r in BUILTIN}
    orphans = [p for p in pages if p[:-3] not in used]
    assert not orphans, f"pages nothing links to (registry or built-in rules): {orphans}"
    broken = []
    for doc in [*RUNBOOKS.glob("*.md"), REPO / "docs" / "architecture.md", REPO / "README.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if not re.match(r"[a-z]+:", target) and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)} -> {target}")
    assert not broken, broken


def test_the_checks_fail_on_what_they_must_catch(tmp_path, monkeypatch):
    # The test can fail: a new rule, a new check, a page without its sections.
    assert page_problems("alert-no-such-rule") == ["docs/runbooks/alert-no-such-rule.md does not exist"]
    assert runbook_for("health", "a check added tomorrow") is None
    script = tmp_path / "check.py"
    script.write_text("def f(node):\n    return result(f'new check of {node}', True, '')\n")
    assert script_checks(script) == ["new check of X"]
    assert runbook_for("compliance", "new check of X") is None
    monkeypatch.setattr(sys.modules[__name__], "RUNBOOKS", tmp_path)
    (tmp_path / "half.md").write_text("# Half\n\n## What it means\n\nx\n\n## Fix\n\n## Verify\n\ny\n")
    assert page_problems("half") == ["half.md: no '## Confirm' section", "half.md: '## Fix' is empty"]


# --- the links in the messages ---------------------------------------------------------------------


class _Store:
    s, ks = None, "logging"


def _notice(rule_mapping: dict, runbook_base: str = "") -> str:
    """The text of the notice the engine builds for one firing key of the rule (dry run: nothing sent)."""
    conf = from_mapping({"cassandra": {"hosts": ["127.0.0.1"]}, "rules": [rule_mapping], "runbook_base": runbook_base})
    rule = {r.name: r for r in conf.rules}[rule_mapping["name"]]
    start, end = datetime(2026, 11, 23, 10, 0, tzinfo=UTC), datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    evaluator = Evaluator(conf, query=None, store=_Store(), channels={}, dry_run=True, history=object())
    report = type("Report", (), {"notifications": [], "silenced": [], "failures": []})()
    evaluator._notify(rule, "app1", "firing", 99, WindowCounts(start, end), end, [], report, rule.channels)
    [notice] = report.notifications
    return notice.text()


@pytest.mark.parametrize("rule", [r["name"] for r in BUILTIN])
def test_a_builtin_rules_notice_links_its_existing_runbook(rule, capsys):
    builtin = {r.name: r for r in parse_rules([])}[rule]
    mapping = {"name": rule, "table": builtin.table, "threshold": builtin.threshold}
    if builtin.kind == "flatline":
        mapping |= {"kind": "flatline", "group_by": builtin.group_by}
    text = _notice(mapping)
    links = re.findall(r"^Runbook: (\S+)$", text, re.M)
    assert links == [f"docs/runbooks/alert-{rule}.md"], text
    assert (REPO / links[0]).is_file()
    capsys.readouterr()


def test_a_runbook_base_makes_a_url_and_own_rules_get_no_link(capsys):
    base = "https://git.example/iact/-/blob/main/docs/runbooks/"
    text = _notice({"name": "errors", "threshold": 1}, runbook_base=base)
    assert "Runbook: https://git.example/iact/-/blob/main/docs/runbooks/alert-errors.md" in text
    assert "Runbook:" not in _notice({"name": "my-own-rule", "threshold": 1})
    capsys.readouterr()


# --- the links in the playbooks' FAIL lines ------------------------------------------------------


@pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook is not installed")
def test_fail_lines_of_health_and_compliance_name_existing_runbooks(tmp_path):
    """tasks/report.yml, run on localhost with one failing row per check (no host is touched)."""
    (tmp_path / "vars").symlink_to(PLAYBOOKS / "vars")
    (tmp_path / "tasks").symlink_to(PLAYBOOKS / "tasks")
    plays = []
    for playbook in CHECKED_PLAYBOOKS:
        checks = [c for p, c in CHECKS if p == playbook and c != f"{playbook} ran"]
        rows = [{"check": c, "ok": False, "detail": "made up"} for c in checks]
        plays.append({
            "name": playbook, "hosts": "localhost", "gather_facts": False, "tasks": [
                {"ansible.builtin.set_fact": {f"{playbook}_results": rows}},
                {"ansible.builtin.include_tasks": {"file": "tasks/report.yml", "apply": {"ignore_errors": True}},
                 "vars": {"report_title": playbook, "report_fact": f"{playbook}_results"}},
            ],
        })  # fmt: skip
    (tmp_path / "report.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    for base in ("", "https://git.example/iact/-/blob/main/docs/runbooks"):
        out = subprocess.run(
            ["ansible-playbook", "-i", "localhost,", "-c", "local", "report.yml", "-e", f"iact_runbook_base={base}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        prefix = (base or "docs/runbooks") + "/"
        for playbook, check in CHECKS:
            if check == f"{playbook} ran":
                continue
            expected = f"{prefix}{runbook_for(playbook, check)}.md"
            row = rf"localhost +{re.escape(check)} +FAIL +made up  \(runbook: {re.escape(expected)}\)"
            assert re.search(row, out.stdout), f"table row of {check!r} without {expected}:\n{out.stdout[-3000:]}"

            assert f"localhost: {check} (made up; runbook {expected})" in out.stdout, out.stdout[-3000:]
        for link in set(re.findall(r"runbook:? (docs/runbooks/\S+?\.md)", out.stdout)):
            assert (REPO / link).is_file(), link
