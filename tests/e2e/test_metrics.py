"""The operator's Prometheus metrics on the real cluster, read through the API server's proxy.

Each replica counts what it saw while it led, so a test reads the leader (the holder of the
Lease kubemr-operator) before and after its job and compares; other jobs running meanwhile
only add to the numbers. Should the leader change meanwhile (another test restarts the
operator), the job runs again under the new one.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import SYSTEM
from tests.e2e.test_operator import corpus, job_manifest, new_bucket, output_counts, wait_for

pytestmark = pytest.mark.e2e

PORT = 8080  # the chart's metricsPort
SERVICE = "kubemr-metrics"
# Map task 0's first attempt fails (UserError); every other attempt succeeds.
CODE = """
import json, os, re, time
TASK = json.loads(os.environ["KUBEMR_TASK"])
WORD = re.compile(r"[a-z]+")

def mapper(offset, line):
    if TASK["index"] == 0 and TASK["attempt"] == 1:
        raise ValueError("the first attempt of map task 0 fails")
    time.sleep(0.01)
    for word in WORD.findall(line.lower()):
        yield word, 1

def reducer(word, counts):
    yield word, sum(counts)
"""

Samples = dict[tuple[str, frozenset], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def get(samples: Samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_pod(cluster, pod: str) -> Samples:
    return parse(cluster.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{SYSTEM}/pods/{pod}:{PORT}/proxy/metrics").stdout)


def leader(cluster) -> str:
    return cluster.get_json("lease", "kubemr-operator", "-n", SYSTEM)["spec"]["holderIdentity"]


def scrape_leader(cluster) -> tuple[tuple[str, float], Samples]:
    """The leader's metrics, and who it is: its pod and its process's start time (a container
    that restarted in the same pod started counting again). Waits out a change of leader."""
    def attempt():
        pod = leader(cluster)
        scraped = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{SYSTEM}/pods/{pod}:"
                                  f"{PORT}/proxy/metrics", check=False)
        samples = parse(scraped.stdout) if scraped.returncode == 0 else {}
        if get(samples, "kubemr_leader") != 1:
            return None
        return (pod, get(samples, "process_start_time_seconds")), samples

    return poll(attempt, timeout=60, what="the leader's metrics")


def operator_pods(cluster) -> list[str]:
    pods = cluster.get_json("pods", "-n", SYSTEM, "-l",
                            "app.kubernetes.io/component=operator")["items"]
    return [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


def poll(check, timeout: float = 180, what: str = "the metrics"):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_the_metrics_move_with_a_job(cluster, ns):
    for run in range(2):
        bucket = new_bucket()
        want = corpus(bucket, files=2, lines=100)
        name = f"metrics-{run}"
        who, before = scrape_leader(cluster)
        cluster.apply(job_manifest(name, ns, bucket, code={"inline": CODE}, parallelism=1))

        def running(who=who) -> bool:
            current, samples = scrape_leader(cluster)
            return current != who or (
                get(samples, "kubemr_jobs", phase="Mapping")
                + get(samples, "kubemr_jobs", phase="Reducing") >= 1
                and get(samples, "kubemr_tasks_waiting", reason="parallelism") >= 1)

        poll(running, what="a running job and a task held back by its parallelism of 1")
        job = wait_for(cluster, ns, name, "Complete")
        current, after = scrape_leader(cluster)
        if current == who:
            break
    else:
        pytest.fail("the operator's leader changed during both runs")
    assert output_counts(bucket) == want
    maps = job["status"]["maps"]["total"]
    assert maps >= 3

    def grew(name: str, **labels) -> float:
        return get(after, name, **labels) - get(before, name, **labels)

    attempts = "kubemr_task_attempts_total"
    assert grew(attempts, type="map", result="succeeded") >= maps
    assert grew(attempts, type="reduce", result="succeeded") >= 3
    assert grew(attempts, type="map", result="UserError") >= 1
    assert grew("kubemr_task_duration_seconds_count", type="map") >= maps
    assert grew("kubemr_task_duration_seconds_count", type="reduce") >= 3
    assert grew("kubemr_job_duration_seconds_count", phase="Succeeded") >= 1
    assert grew("kubemr_job_duration_seconds_sum", phase="Succeeded") > 0
    assert grew("kubemr_job_start_latency_seconds_count") >= 1
    assert grew("kubemr_reconcile_duration_seconds_count") >= 1
    # The phase gauge follows the loop's listing, a round after the status.
    poll(lambda: get(scrape_leader(cluster)[1], "kubemr_jobs", phase="Succeeded") >= 1,
         timeout=30, what='kubemr_jobs{phase="Succeeded"} >= 1')


def test_every_replica_serves_metrics_and_only_the_leader_shows_jobs(cluster, operator):
    pods = operator_pods(cluster)
    assert pods
    lead = leader(cluster)
    for pod in pods:
        samples = scrape_pod(cluster, pod)
        if pod == lead:
            assert get(samples, "kubemr_leader") == 1
        else:
            assert get(samples, "kubemr_leader") == 0
            assert sum(v for (n, _), v in samples.items() if n == "kubemr_jobs") == 0
            assert sum(v for (n, _), v in samples.items() if n == "kubemr_tasks_waiting") == 0
    # The Service (what a ServiceMonitor scrapes through) reaches a replica.
    text = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{SYSTEM}/services/"
                           f"{SERVICE}:metrics/proxy/metrics").stdout
    assert "# TYPE kubemr_task_attempts_total counter" in text
    assert "kubemr_leader " in text
