"""The schema's bounds and CEL rules, as the local validator applies them.

The same table runs against the API server in tests/e2e/test_crd_validation.py.
"""

from __future__ import annotations

import pytest
from kubemr_operator.reconcile import MUTABLE

from kubemr.errors import ManifestError
from kubemr.spec.manifest import RULES, parse_manifest, spec_schema
from tests.manifest_cases import BAD, BOUNDARY, FROZEN, changed, manifest


@pytest.mark.parametrize("path, value, field, phrase",
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_value_past_a_bound_is_refused_naming_the_field(path, value, field, phrase):
    with pytest.raises(ManifestError) as e:
        parse_manifest(changed(manifest(), path, value))
    message = str(e.value)
    assert message.startswith(field + ":"), message
    if phrase:
        assert phrase in message
    assert "\n" not in message


@pytest.mark.parametrize("path, value", [case[1:] for case in BOUNDARY],
                         ids=[case[0] for case in BOUNDARY])
def test_a_value_at_its_bound_is_accepted(path, value):
    parse_manifest(changed(manifest(), path, value))


def test_active_deadline_has_no_default():
    assert "activeDeadlineSeconds" not in parse_manifest(manifest()).spec
    doc = changed(manifest(), "spec.activeDeadlineSeconds", 3600)
    assert parse_manifest(doc).spec["activeDeadlineSeconds"] == 3600


@pytest.mark.parametrize("name", ["Wordcount", "word_count", "-wc", "wc.", "a/b"])
def test_a_name_the_api_server_refuses_is_refused_here(name):
    with pytest.raises(ManifestError, match="^metadata.name: "):
        parse_manifest(changed(manifest(), "metadata.name", name))


def _rules(schema: dict, path: str = "spec"):
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule
    for name, sub in (schema.get("properties") or {}).items():
        yield from _rules(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _rules(schema["items"], f"{path}[]")


def test_every_rule_without_old_self_has_a_local_twin():
    for path, rule in _rules(spec_schema()):
        assert rule.get("message"), f"{path}: rule {rule['rule']!r} has no message"
        if "oldSelf" not in rule["rule"]:
            assert rule["rule"] in RULES, f"{path}: no local check for {rule['rule']!r}"


def test_every_field_but_the_ones_the_operator_rereads_is_frozen():
    """The operator runs a job from the spec it planned, but for MUTABLE fields, which it reads
    afresh each pass: the CRD must refuse a change to any other field."""
    schema = spec_schema()
    frozen = {rule["fieldPath"].lstrip("."): rule for rule in schema["x-kubernetes-validations"]
              if "oldSelf" in rule["rule"]}
    for name in schema["properties"]:
        if name in MUTABLE:
            assert name not in frozen, f"spec.{name} is meant to change while a job runs"
            continue
        assert name in frozen, f"spec.{name} has no rule freezing it (or add it to MUTABLE)"
        rule = frozen.pop(name)
        assert rule["message"] == f"spec.{name} {FROZEN}"
        # has() on both sides: adding or removing an optional field is a change too
        assert f"has(self.{name}) == has(oldSelf.{name})" in rule["rule"]
        assert f"self.{name} == oldSelf.{name}" in rule["rule"]
    assert not frozen, f"rules freeze fields the schema does not have: {sorted(frozen)}"

