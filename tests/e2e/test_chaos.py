"""Chaos on the real cluster: faults in the middle of word counts over at least 40 splits, each
checked exactly against a sequential count. A job may take longer; it must never end wrong.

Marked `chaos` as well as `e2e`; CI runs them (`hack/test.sh` runs every marker).
"""

from __future__ import annotations

import random
import subprocess
import time

import pytest

from tests.e2e.conftest import REPO, SYSTEM
from tests.e2e.test_node_loss import node_command, node_ready
from tests.e2e.test_operator import (
    corpus,
    job_manifest,
    new_bucket,
    output_counts,
    wait_for,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]
SPLITS = dict(files=5, lines=600)  # about 45 splits of 2,000 bytes


def start(cluster, ns, name, mapper="slow", **spec):
    bucket = new_bucket()
    want = corpus(bucket, **SPLITS)
    cluster.apply(job_manifest(name, ns, bucket, mapper=mapper, parallelism=4, **spec))
    return bucket, want


def maps_done(cluster, ns, name) -> int:
    status = cluster.get_json("mapreducejob", name, "-n", ns).get("status", {})
    return status.get("maps", {}).get("succeeded", 0)


def finish(cluster, ns, name, bucket, want) -> dict:
    job = wait_for(cluster, ns, name, "Complete", timeout=900)
    assert job["status"]["maps"]["total"] >= 40
    assert output_counts(bucket) == want
    return job


def test_the_operator_killed_twice_in_each_of_five_jobs(cluster, ns):
    jobs = {f"op-kill-{i}": start(cluster, ns, f"op-kill-{i}") for i in range(5)}
    rng = random.Random()
    kills = 0
    for _ in range(2):
        time.sleep(rng.uniform(3, 15))
        cluster.kubectl("delete", "pod", "-n", SYSTEM, "-l",
                        "app.kubernetes.io/component=operator", "--wait=false")
        kills += 1
    for name, (bucket, want) in jobs.items():
        finish(cluster, ns, name, bucket, want)
    assert kills == 2


def test_a_running_task_pod_deleted_every_three_seconds(cluster, ns):
    bucket, want = start(cluster, ns, "pod-chaos", mapper="slower")
    deleted = []
    deadline = time.time() + 300
    while len(deleted) < 10 and time.time() < deadline:
        time.sleep(3)
        pods = cluster.get_json("pods", "-n", ns, "-l", "kubemr.io/job=pod-chaos")["items"]
        running = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"
                   and not p["metadata"].get("deletionTimestamp")]
        if running:
            victim = random.choice(running)
            cluster.kubectl("delete", "pod", victim, "-n", ns, "--wait=false", check=False)
            deleted.append(victim)
    assert len(deleted) == 10
    job = finish(cluster, ns, "pod-chaos", bucket, want)
    assert job["status"]["attempts"] >= job["status"]["maps"]["total"] + 3


def _restart_minio(cluster, selector: str) -> None:
    """Stop the MinIO process in place: its container restarts, its emptyDir data stays."""
    (pod,) = cluster.get_json("pods", "-n", SYSTEM, "-l", selector)["items"]
    before = pod["status"]["containerStatuses"][0].get("restartCount", 0)
    name = pod["metadata"]["name"]
    cluster.kubectl("exec", "-n", SYSTEM, name, "--", "bash", "-c", "kill -TERM 1",
                    check=False)
    wait_until(lambda: cluster.get_json("pod", name, "-n", SYSTEM)["status"]
               ["containerStatuses"][0].get("restartCount", 0) > before, timeout=120,
               what=f"{name} to restart")


def test_the_central_and_a_per_node_minio_restarted_mid_job(cluster, ns, operator):
    bucket, want = start(cluster, ns, "minio-chaos")
    wait_until(lambda: maps_done(cluster, ns, "minio-chaos") >= 5, what="five committed maps")
    _restart_minio(cluster, "app.kubernetes.io/name=minio")
    wait_until(lambda: maps_done(cluster, ns, "minio-chaos") >= 15, timeout=300,
               what="fifteen committed maps")
    _restart_minio(cluster, f"kubemr.io/storage-node={operator[0]}")
    finish(cluster, ns, "minio-chaos", bucket, want)


def test_a_worker_node_stopped_mid_job_and_started_again(cluster, ns, operator):
    central = {p["spec"].get("nodeName") for p in cluster.get_json(
        "pods", "-n", SYSTEM, "-l", "app.kubernetes.io/name=minio")["items"]}
    leader = cluster.get_json("lease", "kubemr-operator", "-n", SYSTEM)["spec"]["holderIdentity"]
    leader_node = cluster.get_json("pod", leader, "-n", SYSTEM)["spec"].get("nodeName")
    victim = next(n for n in operator if n not in central and n != leader_node)
    bucket, want = start(cluster, ns, "node-chaos")
    wait_until(lambda: maps_done(cluster, ns, "node-chaos") >= 5, what="five committed maps")
    node_command(cluster, "stop", victim)
    try:
        time.sleep(45)  # past the 40 s grace period: the node turns NotReady
    finally:
        node_command(cluster, "start", victim)
        wait_until(lambda: node_ready(cluster, victim), timeout=180, what=f"{victim} Ready")
    finish(cluster, ns, "node-chaos", bucket, want)
    cluster.kubectl("rollout", "status", f"deployment/minio-{victim}", "-n", SYSTEM,
                    "--timeout=180s", timeout=200)


def test_kube_apiserver_restarted_mid_job(cluster, ns):
    if cluster.mode != "local":
        pytest.skip("restarting kube-apiserver is a local-path command (kind: docker restart)")
    bucket, want = start(cluster, ns, "api-chaos")
    wait_until(lambda: maps_done(cluster, ns, "api-chaos") >= 5, what="five committed maps")
    subprocess.run([str(REPO / "hack" / "cluster.sh"), "restart-apiserver"], check=True,
                   timeout=300, capture_output=True)
    finish(cluster, ns, "api-chaos", bucket, want)
