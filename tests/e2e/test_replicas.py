"""Replicated datasets on the real cluster: `kubemr put` over the nodes' MinIO servers, map
pods placed on a replica's node (or its zone), and a node stopped mid-job read around."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

import kubemr
from kubemr.storage import store_for
from kubemr.storage.dataset import Node
from tests.e2e.test_node_loss import keep_off, map_pods, node_command, node_ready
from tests.e2e.test_operator import (
    corpus,
    job_manifest,
    new_bucket,
    output_counts,
    wait_for,
    wait_until,
)

pytestmark = pytest.mark.e2e

ZONE = "topology.kubernetes.io/zone"
BLOCK = 4096


def dataset_of(tmp_path, bucket: str, nodes: list[Node] | None, replicas: int,
               lines: int = 400) -> Counter:
    """The word-count corpus of test_operator, put as a dataset at BUCKET/books in blocks of
    BLOCK bytes; returns its word counts."""
    want = corpus(bucket + "/source", lines=lines)
    store = store_for(bucket + "/")
    for obj in store.list(f"{bucket}/source/in/"):
        (tmp_path / obj.uri.rsplit("/", 1)[1]).write_bytes(store.read_bytes(obj.uri))
    kubemr.put([str(tmp_path)], f"{bucket}/books", replicas=replicas, block_size=BLOCK,
               nodes=nodes)
    return want


def dataset_job(name: str, ns: str, bucket: str, **spec) -> dict:
    manifest = job_manifest(name, ns, bucket, **spec)
    manifest["spec"]["input"] = {"uri": f"{bucket}/books/"}
    return manifest


def committed_maps(cluster, ns: str, name: str) -> list[tuple[list[str], str]]:
    """(the nodes holding its block, the node it ran on) of each map pod that succeeded."""
    ran = []
    for pod in map_pods(cluster, ns, name):
        if pod["status"].get("phase") != "Succeeded":
            continue
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        task = json.loads(env["KUBEMR_TASK"])
        ran.append((task.get("dataNodes") or [task["dataNode"]], pod["spec"]["nodeName"]))
    return ran


def failure_classes(cluster, ns: str, name: str) -> set[str]:
    events = cluster.kubectl("get", "events", "-n", ns, "--field-selector",
                             f"involvedObject.name={name},reason=TaskFailed",
                             "-o", "json").stdout
    return {m for e in json.loads(events)["items"]
            for m in re.findall(r"failed \((\w+)\)", e["message"])}


def test_with_a_node_cordoned_every_map_still_runs_on_a_replica_s_node(cluster, ns, operator,
                                                                        tmp_path):
    bucket = new_bucket()
    nodes = [Node(n, f"s3://node-{n}") for n in operator]
    want = dataset_of(tmp_path, bucket, nodes, replicas=2)
    cordoned = operator[0]
    cluster.kubectl("cordon", cordoned)
    try:
        cluster.apply(dataset_job("replicas", ns, bucket, parallelism=2))
        job = wait_for(cluster, ns, "replicas", "Complete")
    finally:
        cluster.kubectl("uncordon", cordoned)
    assert output_counts(bucket) == want
    maps = job["status"]["maps"]["total"]
    assert maps >= 10  # one per 4 KiB block
    assert job["status"]["locality"] == {"dataLocal": maps, "zoneLocal": 0, "remote": 0}
    ran = committed_maps(cluster, ns, "replicas")
    assert all(node in holders and node != cordoned for holders, node in ran), ran
    assert any(cordoned in holders for holders, _ in ran)  # its blocks ran on the other replica


def test_a_node_stopped_mid_job_is_read_around_and_no_failure_is_the_user_s(cluster, ns,
                                                                           operator, tmp_path):
    central = {p["spec"]["nodeName"] for p in cluster.get_json(
        "pods", "-n", "kubemr-system", "-l", "app.kubernetes.io/name=minio")["items"]}
    victim = next(n for n in operator if n not in central)
    cluster.kubectl("cordon", victim)
    try:
        keep_off(cluster, victim, "kubemr-system", "kubemr-operator",
                 "app.kubernetes.io/component=operator")
        keep_off(cluster, victim, "kube-system", "coredns", "k8s-app=kube-dns")
    finally:
        cluster.kubectl("uncordon", victim)
    bucket = new_bucket()
    want = dataset_of(tmp_path, bucket, [Node(n, f"s3://node-{n}") for n in operator],
                      replicas=2, lines=600)
    cluster.apply(dataset_job("replicas-loss", ns, bucket, mapper="slower", parallelism=6))

    def committed_and_running_on_victim() -> bool:
        phases = [p["status"].get("phase") for p in map_pods(cluster, ns, "replicas-loss")
                  if p["spec"].get("nodeName") == victim]
        return "Succeeded" in phases and "Running" in phases

    wait_until(committed_and_running_on_victim, timeout=240,
               what=f"a committed and a running map on {victim}")
    try:
        node_command(cluster, "stop", victim)
        wait_for(cluster, ns, "replicas-loss", "Complete", timeout=600)
        assert output_counts(bucket) == want
        classes = failure_classes(cluster, ns, "replicas-loss")
        assert "NodeLost" in classes or "MapOutputLost" in classes, classes
        assert not classes & {"UserError", "Timeout", "Killed"}, classes
    finally:
        node_command(cluster, "start", victim)
        wait_until(lambda: node_ready(cluster, victim), timeout=180, what=f"{victim} Ready")
        cluster.kubectl("rollout", "status", f"deployment/minio-{victim}", "-n",
                        "kubemr-system", "--timeout=180s", timeout=200)


def test_a_map_off_its_replica_s_node_but_in_its_zone_counts_as_zone_local(cluster, ns,
                                                                          operator, tmp_path):
    zones = {operator[0]: "zone-a", operator[1]: "zone-a", operator[2]: "zone-b"}
    try:
        for node, zone in zones.items():
            cluster.kubectl("label", "node", node, f"{ZONE}={zone}", "--overwrite")
        bucket = new_bucket()
        want = dataset_of(tmp_path, bucket, None, replicas=1)  # the cluster's nodes and zones
        manifest = json.loads(store_for(bucket + "/").read_bytes(
            f"{bucket}/books/_KUBEMR_DATASET"))
        assert manifest["zones"] == zones
        cluster.kubectl("cordon", operator[0])
        try:
            cluster.apply(dataset_job("zones", ns, bucket, parallelism=2))
            job = wait_for(cluster, ns, "zones", "Complete")
        finally:
            cluster.kubectl("uncordon", operator[0])
    finally:
        for node in zones:
            cluster.kubectl("label", "node", node, f"{ZONE}-", check=False)
    assert output_counts(bucket) == want
    ran = committed_maps(cluster, ns, "zones")
    expected = {"dataLocal": 0, "zoneLocal": 0, "remote": 0}
    for holders, node in ran:
        tier = ("dataLocal" if node in holders else
                "zoneLocal" if zones[node] in {zones[h] for h in holders} else "remote")
        expected[tier] += 1
    assert job["status"]["locality"] == expected
    assert expected["zoneLocal"] > 0, ran  # operator[0]'s blocks ran on operator[1]
