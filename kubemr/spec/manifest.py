"""The MapReduceJob manifest: parse, validate against the CRD schema, apply defaults.

The schema is the CRD's (crds/mapreducejob.yaml, shipped in kubemr/spec/crd/), so the local runner
refuses what the API server refuses, with a message naming the field. The API server evaluates the
schema's CEL rules (x-kubernetes-validations); here each rule has a Python twin in RULES, and rules
that compare with oldSelf (a running job's frozen fields) have nothing to compare locally.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from kubemr.errors import ManifestError
from kubemr.spec.names import API_VERSION, KIND

_CRD_PATH = os.path.join(os.path.dirname(__file__), "crd", "mapreducejob.yaml")
_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool,
    "integer": int, "number": (int, float),
}


_S3_BUCKET = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/|$)")
_S3_BUCKET_DOTS = re.compile(r"s3://[^/]*[.][.]")
_S3_BUCKET_IP = re.compile(r"s3://[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+(/|$)")


def _s3_bucket_ok(uri: str) -> bool:
    return not uri.startswith("s3://") or bool(
        _S3_BUCKET.match(uri) and not _S3_BUCKET_DOTS.match(uri) and not _S3_BUCKET_IP.match(uri))


# The pod labels kubemr sets on task pods besides its kubemr.io/* ones (kubemr.spec.names).
_OWN_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance",
               "app.kubernetes.io/component", "app.kubernetes.io/managed-by")
_OWN_MOUNT = re.compile(r"[/.]*/(scratch|tmp)(/.*)?\Z")

# Each CEL rule of the CRD that does not use oldSelf, as Python over the same value (already
# checked against its schema). tests/unit/test_schema_bounds.py checks that every such rule is here.
RULES: dict[str, Callable[[Any], bool]] = {
    "has(self.uri) != has(self.uris)": lambda v: ("uri" in v) != ("uris" in v),
    "self.startsWith('s3://') || self.startsWith('file://')":
        lambda v: v.startswith(("s3://", "file://")),
    "!self.startsWith('s3://') || (self.matches('^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/|$)') "
    "&& !self.matches('^s3://[^/]*[.][.]') "
    "&& !self.matches('^s3://[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+(/|$)'))": _s3_bucket_ok,
    # spec.template, spec.map.template and spec.reduce.template: what kubemr keeps its own
    "!has(self.command)": lambda v: "command" not in v,
    "!has(self.args)": lambda v: "args" not in v,
    "self.all(k, !k.startsWith('kubemr.io/') && !(k in ['app.kubernetes.io/name', "
    "'app.kubernetes.io/instance', 'app.kubernetes.io/component', "
    "'app.kubernetes.io/managed-by']))":
        lambda v: not any(k.startswith("kubemr.io/") or k in _OWN_LABELS for k in v),
    "self.all(k, !k.startsWith('kubemr.io/'))":
        lambda v: not any(k.startswith("kubemr.io/") for k in v),
    "!self.name.startsWith('KUBEMR_')": lambda v: not v["name"].startswith("KUBEMR_"),
    "!has(self.prefix) || !self.prefix.startsWith('KUBEMR_')":
        lambda v: not v.get("prefix", "").startswith("KUBEMR_"),
    "self.name != 'scratch' && self.name != 'tmp'": lambda v: v["name"] not in ("scratch", "tmp"),
    "!self.mountPath.matches('^[/.]*/(scratch|tmp)(/.*)?$')":
        lambda v: not _OWN_MOUNT.match(v["mountPath"]),
    "!has(self.runAsUser) || self.runAsUser != 0": lambda v: v.get("runAsUser") != 0,
    "!has(self.runAsNonRoot) || self.runAsNonRoot": lambda v: v.get("runAsNonRoot", True),
    "!has(self.allowPrivilegeEscalation) || !self.allowPrivilegeEscalation":
        lambda v: not v.get("allowPrivilegeEscalation", False),
    "!has(self.privileged) || !self.privileged": lambda v: not v.get("privileged", False),
    # spec.reduceTree: what the tree's levels combine with
    "!has(self.reduceTree) || has(self.combiner) || self.reduceTree.associative":
        lambda v: "reduceTree" not in v or "combiner" in v or v["reduceTree"]["associative"],
    "!has(self.reduceTree) || !self.reduceTree.associative || has(self.reducer)":
        lambda v: "reduceTree" not in v or not v["reduceTree"]["associative"] or "reducer" in v,
}
# Every object's name, as the API server checks it (a DNS-1123 subdomain).
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@cache
def crd() -> dict:
    with open(_CRD_PATH) as f:  # with libyaml where PyYAML has it: 10x faster than Python's
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _root_schema() -> dict:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def spec_schema() -> dict:
    return _root_schema()["properties"]["spec"]


def _check_rules(value: Any, schema: dict, path: str) -> None:
    """The schema's CEL rules at this node, through their Python twins; oldSelf rules skipped."""
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue
        check = RULES.get(rule["rule"])
        if check is not None and not check(value):
            where = path + rule.get("fieldPath", "")
            raise ManifestError(f"{where}: {rule.get('message') or 'failed rule: ' + rule['rule']}")


def _validate(value: Any, schema: dict, path: str) -> Any:
    """Check `value` against an OpenAPI v3 schema; return it with defaults filled in."""
    expected = schema.get("type")
    if expected:
        ok = isinstance(value, _TYPES[expected]) and not (
            expected in ("integer", "number") and isinstance(value, bool)
        )
        if not ok:
            raise ManifestError(f"{path}: expected {expected}, got {type(value).__name__} "
                                f"{value!r:.60}")
    if "enum" in schema and value not in schema["enum"]:
        raise ManifestError(f"{path}: {value!r} is not one of {', '.join(schema['enum'])}")
    if "minimum" in schema and value < schema["minimum"]:
        raise ManifestError(f"{path}: {value} is below the minimum {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        raise ManifestError(f"{path}: {value} is above the maximum {schema['maximum']}")
    if "minLength" in schema and len(value) < schema["minLength"]:
        raise ManifestError(f"{path}: must not be empty")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise ManifestError(f"{path}: {len(value)} characters, more than the "
                            f"{schema['maxLength']} allowed")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        raise ManifestError(f"{path}: {len(value)} keys, more than the "
                            f"{schema['maxProperties']} allowed")
    if "minItems" in schema and len(value) < schema["minItems"]:
        raise ManifestError(f"{path}: needs at least {schema['minItems']} item(s)")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise ManifestError(f"{path}: {len(value)} items, more than the "
                            f"{schema['maxItems']} allowed")
    if expected == "array":
        value = [_validate(v, schema.get("items", {}), f"{path}[{i}]")
                 for i, v in enumerate(value)]
    if expected != "object":
        _check_rules(value, schema, path)
        return value
    properties = schema.get("properties", {})
    result = {}
    for name, sub in value.items():
        if name in properties:
            result[name] = _validate(sub, properties[name], f"{path}.{name}")
        elif "additionalProperties" in schema:
            result[name] = _validate(sub, schema["additionalProperties"], f"{path}.{name}")
        elif schema.get("x-kubernetes-preserve-unknown-fields"):
            result[name] = sub  # an embedded Kubernetes type: kept as written
        else:
            close = difflib.get_close_matches(name, properties, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ManifestError(f"{path}: unknown field {name!r}{hint}")
    for name in schema.get("required", []):
        if name not in result:
            raise ManifestError(f"{path}.{name}: required field is missing")
    for name, sub in properties.items():
        if name not in result and "default" in sub:
            result[name] = copy.deepcopy(sub["default"])
    _check_rules(result, schema, path)
    return result


def check_fields(spec: dict, names: tuple[str, ...]) -> None:
    """Check some fields of a spec against the schema and its rules, as the API server does; for
    the operator, whose jobs the API server has checked with the CRD it had."""
    properties = spec_schema()["properties"]
    for name in names:
        if name in spec:
            _validate(spec[name], properties[name], f"spec.{name}")


@dataclass
class JobSpec:
    """A validated job: its name and its spec with every default filled in."""

    name: str
    spec: dict
    namespace: str = "default"

    def to_manifest(self) -> dict:
        return {"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": copy.deepcopy(self.spec)}


def parse_manifest(doc: Any, source: str = "manifest") -> JobSpec:
    if not isinstance(doc, dict):
        raise ManifestError(f"{source}: expected a MapReduceJob mapping, got {type(doc).__name__}")
    if doc.get("apiVersion") != API_VERSION:
        raise ManifestError(f"{source}: apiVersion must be {API_VERSION}, "
                            f"got {doc.get('apiVersion')!r}")
    if doc.get("kind") != KIND:
        raise ManifestError(f"{source}: kind must be {KIND}, got {doc.get('kind')!r}")
    unknown = set(doc) - {"apiVersion", "kind", "metadata", "spec", "status"}
    if unknown:
        raise ManifestError(f"{source}: unknown top-level field {sorted(unknown)[0]!r}")
    metadata = doc.get("metadata") or {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{source}: metadata.name is required")
    _validate(name, _root_schema()["properties"]["metadata"]["properties"]["name"],
              "metadata.name")
    if not _DNS_SUBDOMAIN.fullmatch(name):
        raise ManifestError(f"metadata.name: {name!r} must be lowercase letters, digits, '-' and "
                            "'.', starting and ending with a letter or digit")
    if "spec" not in doc:
        raise ManifestError(f"{source}: spec: required field is missing")
    spec = _validate(doc["spec"], spec_schema(), "spec")
    inputs = spec["input"]
    inputs["uris"] = inputs.pop("uris", None) or [inputs.pop("uri")]
    return JobSpec(name=name, spec=spec, namespace=metadata.get("namespace", "default"))


def load_manifest(path: str) -> JobSpec:
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ManifestError(f"{path}:{where} not valid YAML: "
                            f"{getattr(e, 'problem', None) or e}") from None
    if len(docs) != 1:
        raise ManifestError(f"{path}: expected one MapReduceJob document, found {len(docs)}")
    return parse_manifest(docs[0], path)
