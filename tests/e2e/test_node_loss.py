"""A worker node dies mid-job: its running tasks and the map outputs it kept are made again."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.conftest import REPO, SYSTEM
from tests.e2e.test_operator import (
    corpus,
    job_manifest,
    new_bucket,
    output_counts,
    wait_for,
    wait_until,
)

pytestmark = pytest.mark.e2e


def node_command(cluster, action: str, node: str) -> None:
    if cluster.mode == "kind":
        subprocess.run(["docker", action, node], check=True, timeout=300)
    else:
        subprocess.run([str(REPO / "hack" / "cluster.sh"), f"node-{action}", node], check=True,
                       timeout=300, capture_output=True)


def node_ready(cluster, node: str) -> bool:
    conditions = cluster.get_json("node", node)["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def nodes_of(cluster, namespace: str, selector: str) -> set[str]:
    pods = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return {p["spec"].get("nodeName") for p in pods}


def map_pods(cluster, namespace: str, name: str) -> list[dict]:
    return cluster.get_json("pods", "-n", namespace, "-l",
                            f"kubemr.io/job={name},kubemr.io/task-type=map")["items"]


def keep_off(cluster, node: str, namespace: str, deployment: str, selector: str) -> None:
    """Move a deployment's pods off `node` (which the caller has cordoned)."""
    if node in nodes_of(cluster, namespace, selector):
        cluster.kubectl("delete", "pod", "-n", namespace, "-l", selector, "--field-selector",
                        f"spec.nodeName={node}", "--wait=false")
        cluster.kubectl("rollout", "status", f"deployment/{deployment}", "-n", namespace,
                        "--timeout=180s", timeout=200)


def test_a_lost_node_s_tasks_and_map_outputs_are_made_again(cluster, ns, operator):
    # The victim keeps only task pods and its own MinIO (with their map outputs): not the
    # central MinIO (the job's input, commits and output), the operator or the cluster DNS.
    central = nodes_of(cluster, SYSTEM, "app.kubernetes.io/name=minio")
    victim = next(n for n in operator if n not in central)
    cluster.kubectl("cordon", victim)
    try:
        keep_off(cluster, victim, SYSTEM, "kubemr-operator",
                 "app.kubernetes.io/component=operator")
        keep_off(cluster, victim, "kube-system", "coredns", "k8s-app=kube-dns")
    finally:
        cluster.kubectl("uncordon", victim)

    bucket = new_bucket()
    want = corpus(bucket, files=4, lines=600)
    cluster.apply(job_manifest("node-loss", ns, bucket, mapper="slower", parallelism=6))

    def committed_and_running_on_victim() -> bool:
        pods = [p for p in map_pods(cluster, ns, "node-loss")
                if p["spec"].get("nodeName") == victim]
        phases = [p["status"].get("phase") for p in pods]
        return "Succeeded" in phases and "Running" in phases

    wait_until(committed_and_running_on_victim, timeout=240,
               what=f"a committed and a running map on {victim}")
    try:
        node_command(cluster, "stop", victim)
        job = wait_for(cluster, ns, "node-loss", "Complete", timeout=600)
        assert output_counts(bucket) == want
        events = cluster.kubectl("get", "events", "-n", ns, "--field-selector",
                                 "involvedObject.name=node-loss").stdout
        assert "NodeLost" in events, events
        assert "MapOutputLost" in events, events
        maps = job["status"]["maps"]["total"]
        assert job["status"]["attempts"] > maps + 3
    finally:
        node_command(cluster, "start", victim)
        wait_until(lambda: node_ready(cluster, victim), timeout=180, what=f"{victim} Ready")
        cluster.kubectl("rollout", "status", f"deployment/minio-{victim}", "-n", SYSTEM,
                        "--timeout=180s", timeout=200)
