"""Every job ends, right or not at all, on the real cluster: hung user code times out, the
operator's replicas hand over without rerunning committed work, deletion needs no operator, and
a job created again under a deleted one's name adopts nothing."""

from __future__ import annotations

import json
import time

import pytest

from kubemr.storage import store_for
from tests.e2e.conftest import SYSTEM
from tests.e2e.test_operator import (
    corpus,
    job_manifest,
    new_bucket,
    output_counts,
    running_pods,
    wait_for,
    wait_until,
)

pytestmark = pytest.mark.e2e

HANGING = """
import json
import time
def mapper(offset, line):
    time.sleep(3600)
    yield line, 1
def reducer(key, values):
    yield key, sum(values)
"""


@pytest.mark.parametrize("where", ["map", "import"])
def test_hung_user_code_times_out_and_fails_the_job(cluster, ns, where):
    bucket = new_bucket()
    corpus(bucket, files=1, lines=20)
    code = HANGING if where == "map" else "import time\ntime.sleep(3600)\n" + HANGING
    name = f"hung-{where}"
    started = time.time()
    cluster.apply(job_manifest(name, ns, bucket, code={"inline": code}, maxAttempts=1,
                               taskTimeoutSeconds=15))
    job = wait_for(cluster, ns, name, "Failed", timeout=180)
    status = job["status"]
    assert status["failureClass"] == "Timeout", status
    assert "no progress for" in status["message"]
    assert time.time() - started < 150
    # stopped by then: deleted before the job turned Failed, gone once the kubelet kills it
    assert all(p["metadata"].get("deletionTimestamp") for p in running_pods(cluster, ns, name))
    wait_until(lambda: not running_pods(cluster, ns, name), timeout=60,
               what="the hung task's pod to stop")


def lease_holder(cluster) -> str:
    lease = cluster.get_json("lease", "kubemr-operator", "-n", SYSTEM)
    return lease["spec"]["holderIdentity"]


def test_two_replicas_one_leads_and_a_killed_leader_hands_the_job_over(cluster, ns):
    pods = cluster.get_json("pods", "-n", SYSTEM, "-l",
                            "app.kubernetes.io/component=operator")["items"]
    assert len([p for p in pods if p["status"].get("phase") == "Running"]) == 2
    bucket = new_bucket()
    want = corpus(bucket, files=3, lines=600)
    cluster.apply(job_manifest("handover", ns, bucket, mapper="slow", parallelism=2))
    wait_until(lambda: cluster.get_json("mapreducejob", "handover", "-n", ns).get("status", {})
               .get("maps", {}).get("succeeded", 0) >= 2, what="two committed maps")
    leader = lease_holder(cluster)
    cluster.kubectl("delete", "pod", leader, "-n", SYSTEM, "--wait=false")
    wait_until(lambda: lease_holder(cluster) != leader, timeout=90, what="a new leader")
    job = wait_for(cluster, ns, "handover", "Complete")
    assert output_counts(bucket) == want
    maps = job["status"]["maps"]["total"]
    assert job["status"]["attempts"] == maps + 3, "a committed task ran again"


def test_a_job_is_deleted_at_once_with_no_operator_running(cluster, ns):
    bucket = new_bucket()
    corpus(bucket, files=3, lines=600)
    cluster.apply(job_manifest("orphan", ns, bucket, mapper="slower", parallelism=2))
    wait_until(lambda: running_pods(cluster, ns, "orphan"), what="a running map")
    uid = cluster.get_json("mapreducejob", "orphan", "-n", ns)["metadata"]["uid"]
    cluster.kubectl("scale", "deployment/kubemr-operator", "-n", SYSTEM, "--replicas=0")
    try:
        wait_until(lambda: not cluster.get_json("pods", "-n", SYSTEM, "-l",
                                                "app.kubernetes.io/component=operator")["items"],
                   what="no operator")
        started = time.time()
        cluster.kubectl("delete", "mapreducejob", "orphan", "-n", ns, "--timeout=60s")
        assert time.time() - started < 60
    finally:
        cluster.kubectl("scale", "deployment/kubemr-operator", "-n", SYSTEM, "--replicas=2")
        cluster.kubectl("rollout", "status", "deployment/kubemr-operator", "-n", SYSTEM,
                        "--timeout=180s")
    wait_until(lambda: not cluster.get_json("pods", "-n", ns, "-l",
                                            f"kubemr.io/job-uid={uid}")["items"],
               what="the job's pods to go (owner references)")
    work = store_for("s3://kubemr-work/")
    wait_until(lambda: not work.list(f"s3://kubemr-work/{ns}/"), timeout=120,
               what="the operator's sweep to delete the orphaned work")


def test_a_job_created_again_under_the_same_name_adopts_nothing(cluster, ns):
    bucket = new_bucket()
    want = corpus(bucket, files=3, lines=600)
    cluster.apply(job_manifest("again", ns, bucket, mapper="slower", parallelism=2))
    wait_until(lambda: running_pods(cluster, ns, "again"), what="a running map")
    old_uid = cluster.get_json("mapreducejob", "again", "-n", ns)["metadata"]["uid"]
    cluster.kubectl("delete", "mapreducejob", "again", "-n", ns, "--wait=false")
    wait_until(lambda: not cluster.get_json("mapreducejobs", "-n", ns)["items"],
               what="the job to go")
    cluster.apply(job_manifest("again", ns, bucket, mapper="mapper", parallelism=2))
    job = wait_for(cluster, ns, "again", "Complete")
    assert job["metadata"]["uid"] != old_uid
    assert output_counts(bucket) == want
    maps = job["status"]["maps"]["total"]
    assert job["status"]["attempts"] == maps + 3


def test_a_job_with_200_kib_of_inline_code_runs_on_the_cluster(cluster, ns):
    """Task pods read the spec from the store: a pod's environment holds at most 128 KiB."""
    bucket = new_bucket()
    want = corpus(bucket, files=2, lines=200)
    padding = "\n".join(f"# {'x' * 96} {i}" for i in range(2000))  # about 200 KiB
    manifest = job_manifest("big-code", ns, bucket)
    manifest["spec"]["code"]["inline"] += "\n" + padding + "\n"
    assert len(manifest["spec"]["code"]["inline"]) > 200 * 1024
    # kubectl apply would copy the manifest into an annotation capped at 256 KiB: create it.
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))
    wait_for(cluster, ns, "big-code", "Complete")
    assert output_counts(bucket) == want


@pytest.mark.parametrize("case", ["file input", "plain intermediate path", "missing input",
                                  "output holds a job", "missing code bundle"])
def test_every_bad_input_ends_failed_within_60_s_naming_the_problem(cluster, ns, case):
    """Bad input the schema cannot catch ends Failed, with the problem named, within 60 s."""
    bucket = new_bucket()
    corpus(bucket, files=1, lines=20)
    manifest = job_manifest("bad", ns, bucket)
    spec = manifest["spec"]
    named = {"file input": "spec.input.uri", "plain intermediate path": "spec.intermediate.uri",
             "missing input": "matches no files", "output holds a job": "already holds",
             "missing code bundle": "spec.code.pickle"}[case]
    if case == "file input":
        spec["input"]["uri"] = "file:///etc/"
    elif case == "plain intermediate path":
        spec["intermediate"] = {"uri": "file:///var/lib/kubemr"}
    elif case == "missing input":
        spec["input"]["uri"] = f"{bucket}/nothing-here/"
    elif case == "output holds a job":
        store_for(bucket + "/").write_bytes(f"{bucket}/out/_SUCCESS", b"{}")
    else:
        spec["code"] = {"pickle": f"{bucket}/code/absent.pkl"}
        spec["maxAttempts"] = 2
    started = time.time()
    cluster.apply(manifest)
    job = wait_for(cluster, ns, "bad", "Failed", timeout=60)
    took = time.time() - started
    print(f"bad input {case!r}: Failed in {took:.1f} s: {job['status']['message'][:200]}")
    assert took < 60
    assert named in job["status"]["message"], job["status"]


def test_cancelling_a_failing_job_starts_no_new_attempt(cluster, ns):
    bucket = new_bucket()
    corpus(bucket, files=2, lines=50)
    cluster.apply(job_manifest("cancel-retries", ns, bucket, mapper="always_raises",
                               maxAttempts=10, backoffSeconds=1))
    wait_until(lambda: "TaskFailed" in cluster.kubectl(
        "get", "events", "-n", ns, "--field-selector",
        "involvedObject.name=cancel-retries").stdout, what="a failed attempt")
    cluster.kubectl("delete", "mapreducejob", "cancel-retries", "-n", ns, "--timeout=60s")
    wait_until(lambda: not cluster.get_json("pods", "-n", ns, "-l",
                                            "kubemr.io/job=cancel-retries")["items"],
               timeout=60, what="the job's pods to go")
    time.sleep(10)
    assert not cluster.get_json("pods", "-n", ns, "-l", "kubemr.io/job=cancel-retries")["items"]


def test_suspend_mid_map_then_resume_gives_exact_output_and_reruns_no_committed_task(cluster,
                                                                                     ns):
    bucket = new_bucket()
    want = corpus(bucket, files=3, lines=600)
    cluster.apply(job_manifest("pausing", ns, bucket, mapper="slow", parallelism=2,
                               maxAttempts=1))
    wait_until(lambda: cluster.get_json("mapreducejob", "pausing", "-n", ns).get("status", {})
               .get("maps", {}).get("succeeded", 0) >= 2, what="two committed maps")
    cluster.kubectl("patch", "mapreducejob", "pausing", "-n", ns, "--type=merge",
                    "-p", '{"spec": {"suspend": true}}')
    wait_for(cluster, ns, "pausing", "Suspended", timeout=60)
    wait_until(lambda: not running_pods(cluster, ns, "pausing"), timeout=60,
               what="the running attempts to stop")
    committed = cluster.get_json("mapreducejob", "pausing", "-n", ns)["status"]["maps"]
    time.sleep(5)
    assert not running_pods(cluster, ns, "pausing"), "an attempt started while suspended"
    cluster.kubectl("patch", "mapreducejob", "pausing", "-n", ns, "--type=merge",
                    "-p", '{"spec": {"suspend": false}}')
    job = wait_for(cluster, ns, "pausing", "Complete")
    assert output_counts(bucket) == want
    pods = cluster.get_json("pods", "-n", ns, "-l", "kubemr.io/job=pausing")["items"]
    succeeded = [p for p in pods if p["status"].get("phase") == "Succeeded"]
    tasks = [(p["metadata"]["labels"]["kubemr.io/task-type"],
              p["metadata"]["labels"]["kubemr.io/task-index"]) for p in succeeded]
    assert len(tasks) == len(set(tasks)), "a committed task ran again"
    assert committed["succeeded"] >= 2 and job["status"]["phase"] == "Succeeded"
