"""The operator's pure parts: pod specs, failure classes, task decisions, conditions."""

import json

from kubemr_operator import failures
from kubemr_operator.config import Settings
from kubemr_operator.failures import observe
from kubemr_operator.pods import build_task_pod, pod_name
from kubemr_operator.status import conditions
from kubemr_operator.tasks import TaskState, backoff_seconds, counts, decide

JOB = {"apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
       "metadata": {"name": "wc", "namespace": "team", "uid": "0123456789"},
       "spec": {"locality": "preferred", "resources": {"limits": {"memory": "1Gi"}}}}


def task(kind="map", index=3, attempt=2):
    return {"type": kind, "index": index, "attempt": attempt, "work": "s3://w/x"}


def test_pod_names_are_deterministic_and_short():
    assert pod_name("wc", "map", 3, 2) == "wc-map-3-2"
    long = pod_name("x" * 80, "reduce", 1234, 4)
    assert len(long) <= 63 and long.endswith("-reduce-1234-4")
    assert long == pod_name("x" * 80, "reduce", 1234, 4)


def test_task_pod_runs_one_attempt_as_non_root_with_locality_and_avoidance():
    pod = build_task_pod(job=JOB, task=task(), settings=Settings(), data_node="n1",
                         avoid_node="n2")
    assert pod["metadata"]["name"] == "wc-map-3-2"
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
    pod = build_task_pod(job=job, task=task(), settings=Settings(), data_node="n1")
    required = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["n1"]
    reduce_pod = build_task_pod(job=job, task=task("reduce"), settings=Settings(),
                                data_node="n1")
    assert "affinity" not in reduce_pod["spec"]


def pod(phase, **status):
    return {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1"}, "status": {"phase": phase, **status}}


T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def terminated(**fields):
    return {"containerStatuses": [{"state": {"terminated": fields}}]}


def test_failure_classes():
    user = observe(pod("Failed", **terminated(exitCode=1, message=json.dumps(
        {"ok": False, "error": "Traceback...\nValueError: bad"}))), T0, 600, None, {"n1"})
    assert (user.state, user.failure_class) == ("failed", failures.USER_ERROR)
    assert user.message.endswith("ValueError: bad")
    oom = observe(pod("Failed", **terminated(exitCode=137, reason="OOMKilled")), T0, 600, None,
                  {"n1"})
    assert oom.failure_class == failures.OOM_KILLED
    evicted = observe(pod("Failed", reason="Evicted", message="low memory"), T0, 600, None, set())
    assert evicted.failure_class == failures.EVICTED
    assert observe(None, T0, 600, None, set()).failure_class == failures.DELETED
    image = observe(pod("Pending", containerStatuses=[{"state": {"waiting": {
        "reason": "ErrImageNeverPull", "message": "image not present"}}}]), T0, 600, None, {"n1"})
    assert image.failure_class == failures.IMAGE_OR_SCHEDULING
    unschedulable = observe(pod("Pending", conditions=[{"type": "PodScheduled",
                                                        "message": "0/3 nodes are available"}]),
                            T0 + 700, 600, None, set())
    assert unschedulable.failure_class == failures.IMAGE_OR_SCHEDULING
    assert "0/3 nodes" in unschedulable.message
    lost = observe(pod("Running"), T0 + 10, 600, None, {"n2"})
    assert lost.failure_class == failures.NODE_LOST
    stuck = observe(pod("Running"), T0 + 700, 600, T0 + 50, {"n1"})
    assert stuck.failure_class == failures.TIMEOUT
    alive = observe(pod("Running"), T0 + 700, 600, T0 + 650, {"n1"})
    assert alive.state == "running"


def state(index, attempts=(), outcome=None, committed=False):
    return TaskState("map", index, committed, set(attempts), outcome)


def test_decide_respects_parallelism_retries_and_backoff():
    running = failures.Outcome("running")
    failed_now = failures.Outcome("failed", failures.USER_ERROR, "x", "n2", finished=T0)
    tasks = [state(0, committed=True), state(1, [1], running), state(2, [1], failed_now),
             state(3), state(4)]
    decision = decide(tasks, max_attempts=3, parallelism=3, backoff_base=5, now=T0 + 1)
    assert decision.running == 1
    assert [(t.index, a) for t, a, _ in decision.start] == [(3, 1), (4, 1)]
    decision = decide(tasks, max_attempts=3, parallelism=3, backoff_base=5, now=T0 + 6)
    assert [(t.index, a, avoid) for t, a, avoid in decision.start] == [(2, 2, "n2"), (3, 1, None)]
    exhausted = [state(0, [1, 2, 3], failed_now)]
    assert decide(exhausted, 3, 3, 5, T0 + 100).failed is exhausted[0]
    assert counts(tasks, 3) == {"total": 5, "pending": 3, "running": 1, "succeeded": 1,
                                "failed": 0}
    assert backoff_seconds(5, 1) == 5 and backoff_seconds(5, 3) == 20
    assert backoff_seconds(5, 20) == 300


def test_a_lost_output_runs_again_at_once_whatever_the_attempts_used():
    lost = failures.Outcome("lost", failures.NODE_LOST, "its committed output was lost")
    tasks = [state(0, [1, 2, 3], lost)]
    decision = decide(tasks, max_attempts=3, parallelism=2, backoff_base=5, now=T0)
    assert decision.failed is None
    assert [(t.index, a) for t, a, _ in decision.start] == [(0, 4)]
    assert counts(tasks, 3)["pending"] == 1


def test_conditions_follow_the_phase_and_keep_transition_times():
    first = conditions([], "Mapping", "", 1)
    assert [(c["type"], c["status"]) for c in first] == [
        ("Progressing", "True"), ("Complete", "False"), ("Failed", "False")]
    done = conditions(first, "Succeeded", "output committed", 1)
    complete = next(c for c in done if c["type"] == "Complete")
    assert complete["status"] == "True" and complete["reason"] == "JobSucceeded"
    failed = next(c for c in done if c["type"] == "Failed")
    assert failed["lastTransitionTime"] == first[2]["lastTransitionTime"]
