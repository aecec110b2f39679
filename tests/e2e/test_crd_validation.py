"""The API server refuses what the MapReduceJob schema forbids, and a job's spec stays as made.

Runs the table of tests/manifest_cases.py (which the unit tests run through the local validator)
against the real API server, so both places refuse the same manifests and name the same field.
The refused manifests never become jobs, and the accepted ones are checked with a server-side
dry run, so no operator is needed and no pod starts.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from tests.manifest_cases import BAD, BOUNDARY, FROZEN, changed, manifest

pytestmark = pytest.mark.e2e

CRD = Path(__file__).resolve().parents[2] / "crds" / "mapreducejob.yaml"


@pytest.fixture(scope="module")
def namespace(cluster):
    """A namespace, with the repository's CRD on the server (applied when the server's differs)."""
    want = yaml.safe_load(CRD.read_text())
    live = cluster.kubectl("get", "crd", want["metadata"]["name"], "-o", "json", check=False)
    if live.returncode != 0 or json.loads(live.stdout)["spec"]["versions"] != \
            json.loads(json.dumps(want["spec"]["versions"])):
        cluster.kubectl("apply", "-f", str(CRD))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        f"crd/{want['metadata']['name']}")
    return cluster.new_namespace("crd")


def apply(cluster, doc: dict):
    return cluster.kubectl("apply", "-f", "-", input=json.dumps(doc), check=False)


@pytest.mark.parametrize("case, path, value, field, phrase", BAD, ids=[case[0] for case in BAD])
def test_the_api_server_refuses_a_value_past_a_bound(cluster, namespace, case, path, value, field,
                                                     phrase):
    doc = changed(manifest(f"bad-{case.lower()}", namespace), path, value)
    result = apply(cluster, doc)
    assert result.returncode != 0, f"accepted {path}={value!r:.80}"
    assert f"{field}: " in result.stderr, result.stderr
    if phrase:
        assert phrase in result.stderr, result.stderr


@pytest.mark.parametrize("path, value", [case[1:] for case in BOUNDARY],
                         ids=[case[0] for case in BOUNDARY])
def test_the_api_server_accepts_a_value_at_its_bound(cluster, namespace, path, value):
    doc = changed(manifest("accepted", namespace), path, value)
    # create, not apply: apply keeps the whole manifest in an annotation capped at 256 KiB,
    # which a 1 MiB code.inline passes
    result = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(doc),
                             check=False)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def job(cluster, namespace):
    """An existing job. An operator, if one runs, fails it for want of input; only its spec
    matters here."""
    doc = manifest(f"job-{uuid.uuid4().hex[:8]}", namespace)
    result = apply(cluster, doc)
    assert result.returncode == 0, result.stderr
    return doc["metadata"]["name"]


def patch(cluster, namespace: str, name: str, spec: dict):
    return cluster.kubectl("patch", "mapreducejob", name, "-n", namespace, "--type=merge",
                           "-p", json.dumps({"spec": spec}), check=False)


@pytest.mark.parametrize("field, value", [
    ("reducers", 4),
    ("mapper", "other_mapper"),
    ("input", {"uri": "s3://kubemr-test/elsewhere/"}),
    ("input", {"splitSize": 1 << 20}),
    ("output", {"overwrite": True}),
    ("code", {"inline": "def mapper(k, v):\n    yield k, v\n"}),
    ("maxAttempts", 9),
    ("reducer", None),            # removing an optional field is a change
    ("partitioner", "mypkg:part"),  # and so is adding one
    ("intermediate", {"uri": "s3://kubemr-work/x/"}),
    ("resources", {"limits": {"memory": "2Gi"}}),
    ("template", {"env": [{"name": "GREETING", "value": "hello"}]}),
    ("map", {"template": {"nodeSelector": {"disktype": "ssd"}}}),
    ("reduce", {"template": {"resources": {"limits": {"memory": "2Gi"}}}}),
])
def test_a_field_that_shapes_the_result_cannot_change(cluster, namespace, job, field, value):
    before = cluster.get_json("mapreducejob", job, "-n", namespace)["spec"]
    result = patch(cluster, namespace, job, {field: value})
    assert result.returncode != 0, f"spec.{field} changed"
    assert f"spec.{field}: " in result.stderr, result.stderr
    assert f"spec.{field} {FROZEN}" in result.stderr, result.stderr
    assert cluster.get_json("mapreducejob", job, "-n", namespace)["spec"] == before


@pytest.mark.parametrize("field, value", [
    ("parallelism", 2),
    ("activeDeadlineSeconds", 3600),
    ("ttlSecondsAfterFinished", 60),
])
def test_a_field_safe_to_change_can_change(cluster, namespace, job, field, value):
    result = patch(cluster, namespace, job, {field: value})
    assert result.returncode == 0, result.stderr
    assert cluster.get_json("mapreducejob", job, "-n", namespace)["spec"][field] == value
    # and again, now that the old object has it too
    result = patch(cluster, namespace, job, {field: value + 1})
    assert result.returncode == 0, result.stderr
    assert cluster.get_json("mapreducejob", job, "-n", namespace)["spec"][field] == value + 1


def test_a_frozen_field_set_to_its_own_value_is_no_change(cluster, namespace, job):
    result = patch(cluster, namespace, job, {"reducers": 1, "mapper": "mapper"})
    assert result.returncode == 0, result.stderr
