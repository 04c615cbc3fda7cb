"""Where a notice's runbook is: `docs/runbooks/alert-<rule>.md` for every built-in rule.

The path is relative to the appliance's checkout (the runbooks live in git, next to the playbooks
they call), or under `runbook_base` from alerting.yaml (e.g. the URL of that folder on your git
server, so a chat client makes it a link). Rules of your own have no runbook here: none is linked.
agents/tests/test_runbooks.py fails when a built-in rule has no runbook file.
"""

from __future__ import annotations

from iact.alerting.rules import BUILTIN

RUNBOOK_DIR = "docs/runbooks"
BUILTIN_RULES = frozenset(str(r["name"]) for r in BUILTIN)


def runbook_file(rule: str) -> str:
    """The runbook's file name for a built-in rule."""
    return f"alert-{rule}.md"


def runbook_link(rule: str, base: str = "") -> str:
    """`<base or docs/runbooks>/alert-<rule>.md` for a built-in rule; '' for any other."""
    if rule not in BUILTIN_RULES:
        return ""
    return f"{(base or RUNBOOK_DIR).rstrip('/')}/{runbook_file(rule)}"
