"""The operator on the real cluster: jobs from `kubectl apply` to committed output.

The operator is installed with helm from charts/kubemr, with one MinIO server per worker node.
The host reads and writes MinIO through the Services' cluster IPs (kube-proxy runs on the host).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections import Counter

import pytest

from kubemr.storage import store_for
from tests.e2e.conftest import SECRET, SYSTEM

pytestmark = pytest.mark.e2e

WORDCOUNT = """
import json, os, re, signal, time
WORD = re.compile(r"[a-z]+")
ATTEMPT = json.loads(os.environ["KUBEMR_TASK"])["attempt"]

def mapper(offset, line):
    for word in WORD.findall(line.lower()):
        yield word, 1

def reducer(word, counts):
    yield word, sum(counts)

def exits_first(offset, line):
    if ATTEMPT == 1:
        os._exit(1)
    yield from mapper(offset, line)

def killed_first(offset, line):
    if ATTEMPT == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    yield from mapper(offset, line)

def always_raises(offset, line):
    raise ValueError(f"cannot parse line at byte {offset}")

def slow(offset, line):
    time.sleep(0.02)
    yield from mapper(offset, line)

def slower(offset, line):
    time.sleep(0.1)
    yield from mapper(offset, line)
"""


def corpus(bucket_uri: str, files: int = 4, lines: int = 400) -> Counter:
    """Text files under bucket_uri/in/; returns the word counts a sequential run gives."""
    store = store_for(bucket_uri + "/")
    counts = Counter()
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    for f in range(files):
        text = "".join(" ".join(words[(i * 7 + j + f) % len(words)] for j in range(i % 9 + 1))
                       + "\n" for i in range(lines))
        store.write_bytes(f"{bucket_uri}/in/file-{f}.txt", text.encode())
        counts.update(re.findall(r"[a-z]+", text))
    return counts


def job_manifest(name: str, namespace: str, bucket: str, mapper: str = "mapper", **spec) -> dict:
    return {
        "apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "input": {"uri": f"{bucket}/in/", "splitSize": 2000},
            "output": {"uri": f"{bucket}/out/"},
            "mapper": mapper, "reducer": "reducer", "combiner": "reducer",
            "reducers": 3, "parallelism": 6, "backoffSeconds": 1, "maxAttempts": 3,
            "taskTimeoutSeconds": 120,
            # Backup attempts would make attempt counts vary; tests of speculation turn it on.
            "speculation": False,
            "storage": {"secretName": SECRET},
            "code": {"inline": WORDCOUNT},
            **spec,
        },
    }


def wait_for(cluster, namespace: str, name: str, condition: str, timeout: int = 420) -> dict:
    """The job once its `condition` (Complete or Failed) is True; fails at once if the job
    ends the other way."""
    deadline = time.time() + timeout
    while True:
        job = cluster.get_json("mapreducejob", name, "-n", namespace)
        true = {c["type"] for c in job.get("status", {}).get("conditions", [])
                if c["status"] == "True"}
        if condition in true:
            return job
        ended = true & {"Complete", "Failed"}
        assert not ended and time.time() < deadline, \
            f"job did not reach {condition}: {json.dumps(job.get('status'))}"
        time.sleep(1)


def output_counts(bucket: str) -> Counter:
    store = store_for(bucket + "/")
    names = sorted(o.uri.rsplit("/", 1)[1] for o in store.list(f"{bucket}/out/"))
    assert names == ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    counts = Counter()
    for name in names[1:]:
        for line in store.read_bytes(f"{bucket}/out/{name}").decode().splitlines():
            word, n = line.split("\t")
            assert word not in counts, f"{word} in two parts"
            counts[word] = int(n)
    return counts


def attempts_by_task(cluster, namespace: str, name: str) -> dict:
    """Each task's last attempt number, from its pods' labels.

    Not a count of pods: the operator deletes an attempt's pod that still shows Running when
    it starts the next attempt (a killed container can precede its pod's phase).
    """
    pods = cluster.get_json("pods", "-n", namespace, "-l", f"kubemr.io/job={name}")["items"]
    attempts: dict = {}
    for pod in pods:
        labels = pod["metadata"]["labels"]
        task = (labels["kubemr.io/task-type"], labels["kubemr.io/task-index"])
        attempts[task] = max(attempts.get(task, 0), int(labels["kubemr.io/attempt"]))
    return attempts


def new_bucket() -> str:
    return f"s3://e2e-{uuid.uuid4().hex[:10]}"


def test_wordcount_gives_the_sequential_result(cluster, ns):
    bucket = new_bucket()
    want = corpus(bucket)
    cluster.apply(job_manifest("wordcount", ns, bucket))
    job = wait_for(cluster, ns, "wordcount", "Complete")
    assert output_counts(bucket) == want
    status = job["status"]
    assert status["phase"] == "Succeeded"
    maps = status["maps"]["total"]
    assert maps > 3 and status["mapsDone"] == f"{maps}/{maps}"
    assert status["reducesDone"] == "3/3"
    assert status["attempts"] == maps + 3
    assert status["counters"]["kubemr"]["reduce_output_records"] == len(want)
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Progressing": "False", "Complete": "True", "Failed": "False", "Suspended": "False"}
    printed = cluster.kubectl("get", "mrj", "wordcount", "-n", ns).stdout
    assert "Succeeded" in printed and f"{maps}/{maps}" in printed
    # The operator deletes the intermediate data just after it records Succeeded.
    wait_until(lambda: not store_for("s3://kubemr-work/").list(f"s3://kubemr-work/{ns}/"),
               timeout=60, what="the intermediate data to be deleted")


@pytest.mark.parametrize("mapper", ["exits_first", "killed_first"])
def test_a_mapper_that_crashes_once_is_retried_with_exact_output(cluster, ns, mapper):
    bucket = new_bucket()
    want = corpus(bucket, files=2)
    name = mapper.replace("_", "-")
    cluster.apply(job_manifest(name, ns, bucket, mapper=mapper))
    job = wait_for(cluster, ns, name, "Complete")
    assert output_counts(bucket) == want
    attempts = attempts_by_task(cluster, ns, name)
    maps = job["status"]["maps"]["total"]
    assert [attempts[("map", str(i))] for i in range(maps)] == [2] * maps
    assert job["status"]["attempts"] == 2 * maps + 3


def test_a_mapper_that_always_raises_fails_the_job_with_its_error(cluster, ns):
    bucket = new_bucket()
    corpus(bucket, files=1, lines=50)
    cluster.apply(job_manifest("failing", ns, bucket, mapper="always_raises", maxAttempts=2))
    job = wait_for(cluster, ns, "failing", "Failed")
    status = job["status"]
    assert status["phase"] == "Failed"
    assert status["failureClass"] == "UserError"
    assert "failed on all 2 attempts" in status["message"]
    assert "ValueError: cannot parse line at byte" in status["message"]
    assert store_for(bucket + "/").list(f"{bucket}/out/") == []
    events = cluster.kubectl("get", "events", "-n", ns, "--field-selector",
                             "involvedObject.name=failing").stdout
    assert "TaskFailed" in events


def running_pods(cluster, namespace: str, name: str, task_type: str = "map") -> list[dict]:
    pods = cluster.get_json("pods", "-n", namespace, "-l",
                            f"kubemr.io/job={name},kubemr.io/task-type={task_type}")["items"]
    return [p for p in pods if p["status"].get("phase") == "Running"]


def wait_until(predicate, timeout: float = 180, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_deleting_a_running_task_pod_retries_the_task(cluster, ns):
    bucket = new_bucket()
    want = corpus(bucket, files=2, lines=600)
    cluster.apply(job_manifest("deleted-pod", ns, bucket, mapper="slower", parallelism=2))
    victim = wait_until(lambda: running_pods(cluster, ns, "deleted-pod"), what="a running map")[0]
    cluster.kubectl("delete", "pod", victim["metadata"]["name"], "-n", ns, "--wait=false")
    wait_for(cluster, ns, "deleted-pod", "Complete")
    assert output_counts(bucket) == want
    index = victim["metadata"]["labels"]["kubemr.io/task-index"]
    pods = cluster.get_json("pods", "-n", ns, "-l",
                            f"kubemr.io/job=deleted-pod,kubemr.io/task-index={index},"
                            "kubemr.io/task-type=map")["items"]
    assert [p["metadata"]["labels"]["kubemr.io/attempt"] for p in pods] == ["2"]


def test_operator_restart_resumes_without_rerunning_committed_tasks(cluster, ns):
    bucket = new_bucket()
    want = corpus(bucket, files=3, lines=600)
    cluster.apply(job_manifest("restart", ns, bucket, mapper="slow", parallelism=2))
    wait_until(lambda: cluster.get_json("mapreducejob", "restart", "-n", ns).get("status", {})
               .get("maps", {}).get("succeeded", 0) >= 2, what="two committed maps")
    cluster.kubectl("delete", "pod", "-n", SYSTEM, "-l", "app.kubernetes.io/component=operator")
    job = wait_for(cluster, ns, "restart", "Complete")
    assert output_counts(bucket) == want
    maps = job["status"]["maps"]["total"]
    assert job["status"]["attempts"] == maps + 3, "a committed task ran again"


@pytest.mark.parametrize("change, message", [
    ({"reducers": 0}, "spec.reducers"),
    ({"locality": "sometimes"}, "spec.locality"),
    ({"mapperr": "x"}, 'unknown field "spec.mapperr"'),
])
def test_an_invalid_manifest_is_rejected_by_the_api_server(cluster, ns, change, message):
    manifest = job_manifest("invalid", ns, "s3://nowhere")
    manifest["spec"].update(change)
    result = cluster.kubectl("apply", "--validate=strict", "-f", "-",
                             input=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_deleting_a_job_removes_its_pods_and_intermediate_data(cluster, ns):
    bucket = new_bucket()
    corpus(bucket, files=3, lines=600)
    cluster.apply(job_manifest("doomed", ns, bucket, mapper="slow", parallelism=2))
    wait_until(lambda: cluster.get_json("mapreducejob", "doomed", "-n", ns).get("status", {})
               .get("maps", {}).get("succeeded", 0) >= 1, what="a committed map")
    cluster.kubectl("delete", "mapreducejob", "doomed", "-n", ns, "--timeout=120s")
    wait_until(lambda: not cluster.get_json("pods", "-n", ns, "-l",
                                            "kubemr.io/job=doomed")["items"],
               what="the job's pods to be deleted")
    # The operator deletes the work when it sees the deletion (no finalizer holds the job).
    wait_until(lambda: store_for("s3://kubemr-work/").list(f"s3://kubemr-work/{ns}/") == [],
               timeout=60, what="the intermediate data to be deleted")
    for node_bucket in json.loads(os.environ["KUBEMR_S3_BUCKET_ENDPOINTS"]):
        leftovers = store_for(f"s3://{node_bucket}/").list(f"s3://{node_bucket}/{ns}/")
        assert leftovers == [], f"map output left in {node_bucket}"


def test_map_tasks_run_on_the_node_holding_their_data(cluster, ns, operator):
    want = Counter()
    inputs = []
    for node in operator:
        prefix = f"s3://node-{node}/{ns}-input"
        want += corpus(prefix, files=2, lines=200)
        inputs.append(prefix + "/in/")
    bucket = new_bucket()
    manifest = job_manifest("locality", ns, bucket, parallelism=3)
    manifest["spec"]["input"] = {"uris": inputs, "splitSize": 4000}
    cluster.apply(manifest)
    job = wait_for(cluster, ns, "locality", "Complete")
    assert output_counts(bucket) == want
    locality = job["status"]["locality"]
    total = locality["dataLocal"] + locality["remote"]
    assert total == job["status"]["maps"]["total"]
    assert locality["dataLocal"] >= 0.9 * total, locality


def test_a_finished_job_is_removed_after_its_ttl(cluster, ns):
    bucket = new_bucket()
    want = corpus(bucket, files=1, lines=50)
    cluster.apply(job_manifest("short-lived", ns, bucket, ttlSecondsAfterFinished=3))
    wait_for(cluster, ns, "short-lived", "Complete")
    try:
        wait_until(lambda: not cluster.get_json("mapreducejobs", "-n", ns)["items"],
                   timeout=150, what="the finished job to be removed")
    except AssertionError:
        jobs = cluster.get_json("mapreducejobs", "-n", ns)["items"]
        log = cluster.kubectl("logs", "-n", SYSTEM, "deploy/kubemr-operator", "--tail=60",
                              check=False).stdout
        raise AssertionError(f"job not removed: {json.dumps(jobs)[:3000]}\n{log}") from None
    assert output_counts(bucket) == want  # the output stays


def test_helm_lint_is_clean(cluster):
    from tests.e2e.conftest import REPO, helm_bin

    result = subprocess.run([helm_bin(), "lint", str(REPO / "charts" / "kubemr")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_helm_test_runs_a_word_count_through_the_operator(cluster, operator):
    """The chart's `helm test` hook (templates/tests/, files/helm_test.py) passes, and cleans up."""
    from tests.e2e.conftest import helm_bin

    result = subprocess.run([helm_bin(), "test", "kubemr", "--kubeconfig", cluster.kubeconfig,
                             "--namespace", SYSTEM, "--logs", "--timeout", "300s"],
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Phase:\s+Succeeded", result.stdout), result.stdout
    assert "kubemr helm test: ok: job kubemr-test-" in result.stdout, result.stdout
    wait_until(lambda: not [j for j in cluster.get_json("mapreducejobs", "-n", SYSTEM)["items"]
                            if j["metadata"]["name"].startswith("kubemr-test-")],
               timeout=120, what="the helm test's job to be deleted")


def test_the_image_runs_the_compiled_map_buffer_and_line_splitter(cluster):
    """The image installs kubemr's wheel built with its C modules (kubemr/engine/_tally.c,
    kubemr/engine/_lines.c)."""
    shown = cluster.kubectl("exec", "-n", SYSTEM, "deploy/kubemr-operator", "--", "python3",
                            "-c", "import kubemr.engine.mapbuffer as m, kubemr.engine.formats "
                            "as f; print(m.Tally, m.COMPILED, f.split_lines.__module__)")
    assert shown.stdout.split() == ["<class", "'kubemr.engine._tally.Tally'>", "True",
                                    "kubemr.engine._lines"], shown.stdout
