"""The operator's pure parts: pod specs, failure classes, task decisions, conditions."""

import json

from kubemr_operator.config import Settings
from kubemr_operator.observe import observe_pod
from kubemr_operator.pods import build_task_pod, pod_name
from kubemr_operator.status import conditions

from kubemr.scheduling import Attempt, failures

JOB = {"apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
       "metadata": {"name": "wc", "namespace": "team", "uid": "0123456789"},
       "spec": {"locality": "preferred", "resources": {"limits": {"memory": "1Gi"}}}}


def task(kind="map", index=3, attempt=2):
    return {"type": kind, "index": index, "attempt": attempt, "work": "s3://w/x"}


def test_pod_names_are_deterministic_and_short():
    assert pod_name("wc", "0123456789", "map", 3, 2) == "wc-01234-map-3-2"
    long = pod_name("x" * 63, "0123456789", "reduce", 1234, 4)
    assert len(long) <= 63 and long.endswith("-01234-reduce-1234-4")
    assert long == pod_name("x" * 63, "0123456789", "reduce", 1234, 4)
    assert long != pod_name("x" * 63, "9876543210", "reduce", 1234, 4)


def test_task_pod_runs_one_attempt_as_non_root_with_locality_and_avoidance():
    pod = build_task_pod(job=JOB, task=task(), settings=Settings(), data_nodes=["n1"],
                         avoid_node="n2")
    assert pod["metadata"]["name"] == "wc-01234-map-3-2"
    assert pod["metadata"]["labels"]["kubemr.io/job-uid"] == "0123456789"
    assert pod["metadata"]["labels"]["kubemr.io/attempt"] == "2"
    spec = pod["spec"]
    container = spec["containers"][0]
    assert spec["restartPolicy"] == "Never"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["resources"] == {"limits": {"memory": "1Gi"}}
    env = {e["name"]: e for e in container["env"]}
    assert json.loads(env["KUBEMR_TASK"]["value"])["index"] == 3
    assert env["KUBEMR_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "kubemr-storage"
    preferred = spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    terms = {p["preference"]["matchExpressions"][0]["operator"]:
             p["preference"]["matchExpressions"][0]["values"] for p in preferred}
    assert terms == {"In": ["n1"], "NotIn": ["n2"]}


def test_required_locality_and_reduce_pods_without_locality():
    job = {**JOB, "spec": {"locality": "required"}}
    pod = build_task_pod(job=job, task=task(), settings=Settings(), data_nodes=["n1"])
    required = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["n1"]
    reduce_pod = build_task_pod(job=job, task=task("reduce"), settings=Settings(),
                                data_nodes=["n1"])
    assert "affinity" not in reduce_pod["spec"]


def pod(phase, **status):
    return {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1"}, "status": {"phase": phase, **status}}


T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def terminated(**fields):
    return {"containerStatuses": [{"state": {"terminated": fields}}]}


def observed(pod_doc, now=T0, ready=("n1",)):
    attempt = Attempt(1)
    observe_pod(attempt, pod_doc, now, set(ready))
    return attempt


def test_pods_are_observed_into_the_schedulers_failure_classes():
    user = observed(pod("Failed", **terminated(exitCode=1, message=json.dumps(
        {"ok": False, "error": "Traceback...\nValueError: bad", "errorType": "ValueError"}))))
    assert (user.state, user.failure) == ("failed", failures.USER_ERROR)
    assert user.message.endswith("ValueError: bad")
    storage = observed(pod("Failed", **terminated(exitCode=1, message=json.dumps(
        {"ok": False, "error": "cannot read", "errorType": "StorageUnavailable"}))))
    assert storage.failure == failures.STORAGE_ERROR
    lost = observed(pod("Failed", **terminated(exitCode=1, message=json.dumps(
        {"ok": False, "error": "gone", "errorType": "MapOutputLost", "lostMaps": [[2, 1]]}))))
    assert (lost.failure, lost.lost_maps) == (failures.MAP_OUTPUT_LOST, ((2, 1),))
    oom = observed(pod("Failed", **terminated(exitCode=137, reason="OOMKilled")))
    assert oom.failure == failures.OOM_KILLED
    killed = observed(pod("Failed", **terminated(exitCode=137)))
    assert killed.failure == failures.KILLED
    # A pod deleted by someone: its task gets SIGTERM (143) and is seen Failed before it goes.
    for code in (143, 137):
        deleted = pod("Failed", **terminated(exitCode=code, message="log tail"))
        deleted["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:05Z"
        assert observed(deleted).failure == failures.DELETED
    raised = pod("Failed", **terminated(exitCode=1, message=json.dumps(
        {"ok": False, "error": "ValueError: bad", "errorType": "ValueError"})))
    raised["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:05Z"
    assert observed(raised).failure == failures.USER_ERROR  # failed on its own, then deleted
    evicted = observed(pod("Failed", reason="Evicted", message="low memory"))
    assert evicted.failure == failures.EVICTED
    drained = observed(pod("Failed", conditions=[{"type": "DisruptionTarget", "status": "True",
                                                  "reason": "EvictionByEvictionAPI"}]))
    assert drained.failure == failures.EVICTED
    image = observed(pod("Pending", containerStatuses=[{"state": {"waiting": {
        "reason": "ErrImageNeverPull", "message": "image not present"}}}]))
    assert image.failure == failures.NOT_STARTED
    unschedulable = observed(pod("Pending", conditions=[
        {"type": "PodScheduled", "message": "0/3 nodes are available"}]))
    assert (unschedulable.state, unschedulable.message) == ("pending", "0/3 nodes are available")
    assert observed(pod("Running"), ready=("n2",)).failure == failures.NODE_LOST
    running = observed(pod("Running"))
    assert (running.state, running.launched) == ("running", T0)


def test_conditions_follow_the_phase_and_keep_transition_times():
    first = conditions([], "Mapping", "", 1)
    assert [(c["type"], c["status"]) for c in first] == [
        ("Progressing", "True"), ("Complete", "False"), ("Failed", "False"),
        ("Suspended", "False")]
    done = conditions(first, "Succeeded", "output committed", 1)
    complete = next(c for c in done if c["type"] == "Complete")
    assert complete["status"] == "True" and complete["reason"] == "JobSucceeded"
    failed = next(c for c in done if c["type"] == "Failed")
    assert failed["lastTransitionTime"] == first[2]["lastTransitionTime"]


def test_cached_commit_records_share_one_copy_of_each_key():
    from kubemr_operator.reconcile import _interned_keys

    text = '{"attempt": 1, "counters": {"kubemr": {"map_input_records": 4}}, "node": "n1"}'
    first, second = (_interned_keys(json.loads(text)) for _ in range(2))
    assert first == second == json.loads(text)
    assert all(a is b for a, b in zip(first, second, strict=True))
    assert all(a is b for a, b in zip(first["counters"]["kubemr"],
                                      second["counters"]["kubemr"], strict=True))
