"""Task pod templates: what a job's task pods get besides what kubemr sets.

spec.template applies to every task pod; spec.map.template and spec.reduce.template have the same
fields and apply to one task type, over spec.template. The operator puts the merged template into
each pod (kubemr_operator.pods); the local runner uses its env (plain values) and its memory limit.
What kubemr keeps its own (command, non-root user, KUBEMR_* variables, scratch and tmp, its labels)
is refused by the CRD's rules, whose Python twins are in kubemr.spec.manifest.RULES.
"""

from __future__ import annotations

import copy

from kubemr.spec.manifest import check_fields

TEMPLATE_FIELDS = ("template", "map", "reduce")
TASK_TYPES = ("map", "reduce")  # the task types a template is given for
# A combine task of a tree of reduces (spec.reduceTree) is reduce work: it runs with the reduce
# task template.
TEMPLATE_OF = {"combine": "reduce"}
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"

# How each list is keyed when a task type's template adds to spec.template: an entry with the
# same key replaces the earlier one in place; lists not named here are concatenated.
_LIST_KEYS = {"env": "name", "volumes": "name", "volumeMounts": "mountPath",
              "imagePullSecrets": "name"}
_MAPS = ("labels", "annotations", "nodeSelector", "securityContext")


def check_template(spec: dict) -> None:
    """Refuse a template that takes what is kubemr's, naming the field (ManifestError)."""
    check_fields(spec, TEMPLATE_FIELDS)


def task_template(spec: dict, kind: str) -> dict:
    """The template of one task type's pods: spec.template, spec.<kind>.template over it, and
    resources over spec.resources (by resource name)."""
    base = spec.get("template") or {}
    over = (spec.get(TEMPLATE_OF.get(kind, kind)) or {}).get("template") or {}
    merged = merge_templates(base, over)
    resources = merge_resources(spec.get("resources") or {}, merged.get("resources") or {})
    if resources:
        merged["resources"] = resources
    return merged


def merge_templates(base: dict, over: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in copy.deepcopy(over).items():
        if key not in merged:
            merged[key] = value
        elif key in _LIST_KEYS:
            merged[key] = _by_key(merged[key], value, _LIST_KEYS[key])
        elif isinstance(value, list):
            merged[key] = merged[key] + [v for v in value if v not in merged[key]]
        elif key in _MAPS:
            merged[key] = {**merged[key], **value}
        elif key == "resources":
            merged[key] = merge_resources(merged[key], value)
        elif key == "affinity":
            merged[key] = merge_affinity(merged[key], value)
        else:
            merged[key] = value
    return merged


def _by_key(base: list[dict], over: list[dict], key: str) -> list[dict]:
    replaced = {item[key]: item for item in over}
    merged = [replaced.pop(item[key], item) for item in base]
    return merged + [item for item in over if item[key] in replaced]


def merge_resources(base: dict, over: dict) -> dict:
    """Requests and limits, `over`'s quantity winning for each resource it names."""
    merged = {**copy.deepcopy(base), **copy.deepcopy(over)}
    for key in ("limits", "requests"):
        both = {**(base.get(key) or {}), **(over.get(key) or {})}
        if both:
            merged[key] = both
    return merged


def merge_affinity(base: dict | None, over: dict | None) -> dict | None:
    """Both affinities hold: required node terms are combined pairwise (a node must match one
    term of each), required pod terms and every preferred term are kept side by side."""
    if not base or not over:
        return copy.deepcopy(base or over) or None
    merged = {**copy.deepcopy(base), **copy.deepcopy(over)}
    nodes_a, nodes_b = base.get("nodeAffinity") or {}, over.get("nodeAffinity") or {}
    if nodes_a and nodes_b:
        node = {**copy.deepcopy(nodes_a), **copy.deepcopy(nodes_b)}
        if REQUIRED in nodes_a and REQUIRED in nodes_b:
            node[REQUIRED] = {**nodes_a[REQUIRED], **nodes_b[REQUIRED], "nodeSelectorTerms": [
                _both_terms(a, b) for a in nodes_a[REQUIRED]["nodeSelectorTerms"]
                for b in nodes_b[REQUIRED]["nodeSelectorTerms"]]}
        if PREFERRED in nodes_a and PREFERRED in nodes_b:
            node[PREFERRED] = nodes_a[PREFERRED] + nodes_b[PREFERRED]
        merged["nodeAffinity"] = copy.deepcopy(node)
    for kind in ("podAffinity", "podAntiAffinity"):
        pods_a, pods_b = base.get(kind) or {}, over.get(kind) or {}
        if pods_a and pods_b:
            pods = {**pods_a, **pods_b}
            for key in (REQUIRED, PREFERRED):
                if key in pods_a and key in pods_b:
                    pods[key] = pods_a[key] + pods_b[key]
            merged[kind] = copy.deepcopy(pods)
    return merged


def _both_terms(a: dict, b: dict) -> dict:
    """A node selector term that holds where both do: their requirements, ANDed."""
    term = {**a, **b}
    for key in ("matchExpressions", "matchFields"):
        both = (a.get(key) or []) + (b.get(key) or [])
        if both:
            term[key] = both
    return copy.deepcopy(term)


def plain_env(template: dict) -> dict[str, str]:
    """The template's variables that have a value of their own (not valueFrom), as the local
    runner sets them. An entry with neither is the empty string, as in a pod."""
    return {item["name"]: item.get("value", "") for item in template.get("env") or []
            if "valueFrom" not in item}
