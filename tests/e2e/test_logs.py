"""Attempt logs outlive their pods on the real cluster: `kubemr logs` reads the stored tail once
the pods are gone, spec.retainPods says which pods stay, and the logs go with the job."""

from __future__ import annotations

import pytest

from kubemr.client.cluster import Cluster
from kubemr.client.sdk import Job
from kubemr.runtime.logs import stored_attempts
from kubemr.storage import store_for
from tests.e2e.test_operator import (
    WORDCOUNT,
    corpus,
    job_manifest,
    new_bucket,
    wait_for,
    wait_until,
)
from tests.e2e.test_sdk_cli import cli

pytestmark = pytest.mark.e2e

NOISY = WORDCOUNT + """
import subprocess, sys

def noisy_raises(offset, line):
    print(f"stdout of attempt {ATTEMPT}", flush=True)
    subprocess.run(["sh", "-c", f"echo stderr of a subprocess of attempt {ATTEMPT} >&2"])
    raise ValueError(f"cannot parse line at byte {offset}")

def fails_first(offset, line):
    if ATTEMPT == 1:
        print("attempt 1 gives up", flush=True)
        raise RuntimeError("the first attempt fails")
    yield from mapper(offset, line)
"""


def pods(cluster, namespace: str, name: str) -> list[dict]:
    return cluster.get_json("pods", "-n", namespace, "-l", f"kubemr.io/job={name}")["items"]


def test_a_failed_attempts_log_is_read_after_its_pods_are_deleted(cluster, ns):
    bucket = new_bucket()
    corpus(bucket, files=1, lines=30)
    manifest = job_manifest("logged", ns, bucket, mapper="noisy_raises", maxAttempts=2,
                            reducers=1, code={"inline": NOISY})
    cluster.apply(manifest)
    job = wait_for(cluster, ns, "logged", "Failed")
    logs = job["status"]["logs"]
    assert logs.endswith(f"/_logs/{ns}/logged-{job['metadata']['uid'][:8]}")
    cluster.kubectl("delete", "pods", "-n", ns, "-l", "kubemr.io/job=logged", "--wait=true")
    assert pods(cluster, ns, "logged") == []

    latest = cli("logs", "logged", "-n", ns, "--task", "map-0").stdout
    assert "stdout of attempt 2" in latest
    assert "stderr of a subprocess of attempt 2" in latest
    assert "ValueError: cannot parse line at byte 0" in latest
    first = cli("logs", "logged", "-n", ns, "--task", "map-0", "--attempt", "1").stdout
    assert "stdout of attempt 1" in first and "attempt 2" not in first
    assert Job("logged", ns, Cluster()).logs("map-0", attempt=2) == latest
    missing = cli("logs", "logged", "-n", ns, "--task", "map-0", "--attempt", "5", check=False)
    assert missing.returncode == 2 and "its attempts are 1, 2" in missing.stderr

    cli("delete", "logged", "-n", ns)
    wait_until(lambda: not store_for(logs + "/").list(logs + "/"), timeout=120,
               what="the job's logs to go with it")


def test_retain_pods_on_failure_keeps_only_the_failed_pods(cluster, ns):
    bucket = new_bucket()
    corpus(bucket, files=2, lines=75)  # 2,045 bytes or more each: one map task per file
    cluster.apply(job_manifest("onfailure", ns, bucket, mapper="fails_first", reducers=1,
                               retainPods="OnFailure", code={"inline": NOISY}))
    job = wait_for(cluster, ns, "onfailure", "Complete")
    wait_until(lambda: all(p["status"]["phase"] == "Failed"
                           for p in pods(cluster, ns, "onfailure")),
               timeout=60, what="the succeeded pods to go")
    kept = sorted((p["metadata"]["labels"]["kubemr.io/task-index"],
                   p["metadata"]["labels"]["kubemr.io/attempt"])
                  for p in pods(cluster, ns, "onfailure"))
    assert kept == [("0", "1"), ("1", "1")]
    # the logs of the attempts whose pods went are in the store
    assert sorted(stored_attempts(job["status"]["logs"], "map", 0)) == [1, 2]
    assert "attempt 1 gives up" in cli("logs", "onfailure", "-n", ns, "--task", "map-0",
                                       "--attempt", "1").stdout
    cli("logs", "onfailure", "-n", ns, "--task", "reduce-0")  # stored: its pod is gone


def test_retain_pods_never_leaves_no_pod_and_every_log(cluster, ns):
    bucket = new_bucket()
    corpus(bucket, files=1, lines=30)
    cluster.apply(job_manifest("never", ns, bucket, mapper="noisy_raises", maxAttempts=1,
                               reducers=1, retainPods="Never", code={"inline": NOISY}))
    wait_for(cluster, ns, "never", "Failed")
    wait_until(lambda: not pods(cluster, ns, "never"), timeout=60, what="every pod to go")
    assert "ValueError: cannot parse line at byte 0" in \
        cli("logs", "never", "-n", ns, "--task", "map-0").stdout
