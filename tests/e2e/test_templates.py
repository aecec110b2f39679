"""Pod templates on the real cluster: what a job's template gives its task pods reaches them.

Environment variables reach user code, a ConfigMap volume is readable by a mapper, pods run on a
tainted node only with the template's toleration, and a PYTHONHASHSEED set through the template
changes no output part.
"""

from __future__ import annotations

import json

import pytest

from kubemr.storage import store_for
from tests.e2e.test_operator import (
    corpus,
    job_manifest,
    new_bucket,
    output_counts,
    wait_for,
    wait_until,
)

pytestmark = pytest.mark.e2e

CODE = """
import os, re
WORD = re.compile(r"[a-z]+")

def mapper(offset, line):
    for word in WORD.findall(line.lower()):
        yield word, 1

def reducer(word, counts):
    yield word, sum(counts)

def greeting_mapper(offset, line):
    for word in WORD.findall(line.lower()):
        yield word + "-" + os.environ["GREETING"], 1

def namespace_reducer(word, counts):
    yield word + "@" + os.environ["POD_NAMESPACE"], sum(counts)

def stopword_mapper(offset, line):
    with open("/etc/kubemr-test/words") as f:
        stop = set(f.read().split())
    for word in WORD.findall(line.lower()):
        if word not in stop:
            yield word, 1
"""


def manifest(name: str, namespace: str, bucket: str, **spec) -> dict:
    return job_manifest(name, namespace, bucket, code={"inline": CODE}, **spec)


def job_pods(cluster, namespace: str, name: str, selector: str = "") -> list[dict]:
    labels = f"kubemr.io/job={name}" + (f",{selector}" if selector else "")
    return cluster.get_json("pods", "-n", namespace, "-l", labels)["items"]


def test_user_code_reads_variables_set_through_the_template(cluster, ns):
    bucket = new_bucket()
    want = corpus(bucket, files=2, lines=200)
    cluster.apply(manifest(
        "env", ns, bucket, mapper="greeting_mapper", reducer="namespace_reducer",
        template={"labels": {"team": "search"},
                  "env": [{"name": "GREETING", "value": "hello"}]},
        reduce={"template": {"env": [{"name": "POD_NAMESPACE", "valueFrom": {
            "fieldRef": {"fieldPath": "metadata.namespace"}}}]}}))
    wait_for(cluster, ns, "env", "Complete")
    assert output_counts(bucket) == {f"{w}-hello@{ns}": n for w, n in want.items()}
    pods = job_pods(cluster, ns, "env")
    assert pods and all(p["metadata"]["labels"]["team"] == "search" for p in pods)


def test_a_mapper_reads_a_configmap_volume(cluster, ns):
    cluster.kubectl("create", "configmap", "stopwords", "-n", ns,
                    "--from-literal=words=alpha beta gamma")
    bucket = new_bucket()
    want = corpus(bucket, files=2, lines=200)
    cluster.apply(manifest(
        "configmap", ns, bucket, mapper="stopword_mapper",
        template={"volumes": [{"name": "words", "configMap": {"name": "stopwords"}}]},
        map={"template": {"volumeMounts": [{"name": "words", "mountPath": "/etc/kubemr-test",
                                            "readOnly": True}]}}))
    wait_for(cluster, ns, "configmap", "Complete")
    assert output_counts(bucket) == {w: n for w, n in want.items()
                                     if w not in ("alpha", "beta", "gamma")}


TAINT = "kubemr-test=yes:NoSchedule"


def test_pods_land_on_a_tainted_node_only_with_the_toleration(cluster, ns, operator):
    node = operator[-1]
    bucket = new_bucket()
    want = corpus(bucket, files=2, lines=200)
    on_node = {"nodeSelector": {"kubernetes.io/hostname": node}}
    toleration = {"key": "kubemr-test", "operator": "Equal", "value": "yes",
                  "effect": "NoSchedule"}
    untolerated_input = new_bucket()
    corpus(untolerated_input, files=1, lines=20)
    cluster.kubectl("taint", "node", node, TAINT, "--overwrite")
    try:
        cluster.apply(manifest("untolerated", ns, untolerated_input, template=on_node))
        cluster.apply(manifest("tolerated", ns, bucket,
                               template={**on_node, "tolerations": [toleration]}))
        wait_for(cluster, ns, "tolerated", "Complete")
        assert output_counts(bucket) == want
        pods = job_pods(cluster, ns, "tolerated")
        assert pods and {p["spec"]["nodeName"] for p in pods} == {node}

        def unschedulable() -> bool:
            pods = job_pods(cluster, ns, "untolerated")
            scheduled = [next((c for c in p["status"].get("conditions", [])
                               if c["type"] == "PodScheduled"), {}) for p in pods]
            return bool(pods) and all(c.get("reason") == "Unschedulable"
                                      and "taint" in c.get("message", "") for c in scheduled)
        wait_until(unschedulable, timeout=60, what="the untolerated pods to be unschedulable")
        assert all("nodeName" not in p["spec"] for p in job_pods(cluster, ns, "untolerated"))
    finally:
        cluster.kubectl("delete", "mapreducejob", "untolerated", "-n", ns, "--wait=false",
                        check=False)
        cluster.kubectl("taint", "node", node, TAINT + "-", check=False)
    assert TAINT.split("=")[0] not in json.dumps(
        cluster.get_json("node", node)["spec"].get("taints", []))


def test_a_hash_seed_set_through_the_template_leaves_every_part_unchanged(cluster, ns):
    """The default partitioner hashes a key's canonical bytes (CRC32), never Python's hash()."""
    source = new_bucket()
    corpus(source, files=3, lines=300)
    outputs = {}
    for seed in ("none", "0", "12345"):
        bucket = new_bucket()
        spec = {"input": {"uri": f"{source}/in/", "splitSize": 2000}}
        if seed != "none":
            spec["template"] = {"env": [{"name": "PYTHONHASHSEED", "value": seed}]}
        cluster.apply(manifest(f"seed-{seed}", ns, bucket, **spec))
        outputs[seed] = bucket
    parts = {}
    for seed, bucket in outputs.items():
        wait_for(cluster, ns, f"seed-{seed}", "Complete")
        store = store_for(bucket + "/")
        parts[seed] = {o.uri.rsplit("/", 1)[1]: store.read_bytes(o.uri)
                       for o in store.list(f"{bucket}/out/") if "/part-" in o.uri}
    assert sorted(parts["none"]) == ["part-00000", "part-00001", "part-00002"]
    assert all(parts["none"].values())
    assert parts["0"] == parts["none"] and parts["12345"] == parts["none"]


def test_a_template_making_pods_the_api_server_refuses_fails_the_job_at_once(cluster, ns):
    """The operator has one pod of each task type checked (dry run) before any starts."""
    bucket = new_bucket()
    corpus(bucket, files=1, lines=20)
    cluster.apply(manifest("bad-volume", ns, bucket, template={
        "volumes": [{"name": "Data_1", "emptyDir": {}}]}))
    job = wait_for(cluster, ns, "bad-volume", "Failed", timeout=60)
    assert job["status"]["failureClass"] == "InvalidInput"
    assert "the API server refuses the map task pods" in job["status"]["message"]
    assert 'Invalid value: "Data_1"' in job["status"]["message"]
    assert job_pods(cluster, ns, "bad-volume") == []
