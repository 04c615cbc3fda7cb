"""Repository-wide checks of the Ansible roles' conventions."""

from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_specs_match_defaults(role):
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(specs) == set(defaults), (
        f"only in defaults: {sorted(set(defaults) - set(specs))}; only in specs: {sorted(set(specs) - set(defaults))}"
    )
    for name, value in defaults.items():
        assert specs[name].get("default") == value, f"{name}: spec default {specs[name].get('default')!r} != {value!r}"
        assert specs[name].get("description"), f"{name} has no description in argument_specs"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_public_variables_are_role_prefixed_and_documented(role):
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    readme = (role / "README.md").read_text()
    for name in defaults:
        assert name.startswith(f"{role.name}_"), f"{name} lacks the {role.name}_ prefix"
        assert f"`{name}`" in readme, f"{name} is not documented in {role.name}/README.md"
    internal = yaml.safe_load((role / "vars" / "main.yml").read_text()) or {}
    for name in internal:
        assert name.startswith(f"_{role.name}_"), f"internal variable {name} lacks the _{role.name}_ prefix"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_templates_open_with_ansible_managed(role):
    for template in (role / "templates").glob("*.j2"):
        head = "\n".join(template.read_text().splitlines()[:3])
        assert "{{ ansible_managed }}" in head, f"{template.name} does not say it is managed"
