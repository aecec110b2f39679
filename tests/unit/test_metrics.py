"""The operator's metrics: each function against a registry of its own, then the reconcile pass
(against tests/unit/standin.py) counting a job's attempts and its end once each."""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest
from kubemr_operator import metrics as metrics_module
from kubemr_operator import reconcile as reconcile_module
from kubemr_operator.config import Settings
from kubemr_operator.metrics import Metrics
from prometheus_client import CollectorRegistry

from kubemr.scheduling import Decision, Task
from kubemr.scheduling.state import PENDING, RUNNING
from tests.conftest import make_job
from tests.unit.standin import StandInCluster, iso, job_object, run_to_the_end
from tests.unit.test_reconcile import WORDCOUNT


@pytest.fixture
def registry():
    """A fresh registry whose Metrics the operator's hooks update for the test."""
    registry = CollectorRegistry()
    previous = metrics_module.use(Metrics(registry, since=0))
    yield registry
    metrics_module.use(previous)


def value(registry: CollectorRegistry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def job(uid: str, phase: str | None = None, created: float | None = None) -> dict:
    meta = {"name": f"job-{uid}", "namespace": "team", "uid": uid}
    if created is not None:
        meta["creationTimestamp"] = iso(created)
    return {"metadata": meta, "status": {"phase": phase} if phase else {}}


# -- the functions, one registry each ---------------------------------------------------------

def test_failed_attempts_count_by_type_and_class_and_an_unknown_class_as_other():
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.attempt_failed("map", "UserError")
    m.attempt_failed("map", "UserError")
    m.attempt_failed("reduce", "MapOutputLost")
    m.attempt_failed("map", "whatever a forged marker says")
    name = "kubemr_task_attempts_total"
    assert value(registry, name, type="map", result="UserError") == 2
    assert value(registry, name, type="reduce", result="MapOutputLost") == 1
    assert value(registry, name, type="map", result="Other") == 1


def test_a_commit_counts_a_success_and_its_duration_unless_it_predates_the_leadership():
    registry = CollectorRegistry()
    m = Metrics(registry, since=1000.0)
    m.attempt_committed("map", {"started": 990.0, "seconds": 20.0})  # ended at 1010: counted
    m.attempt_committed("map", {"started": 900.0, "seconds": 20.0})  # ended before: not
    m.attempt_committed("reduce", {"attempt": 1})  # no times: counted, no duration
    assert value(registry, "kubemr_task_attempts_total", type="map", result="succeeded") == 1
    assert value(registry, "kubemr_task_attempts_total", type="reduce", result="succeeded") == 1
    assert value(registry, "kubemr_task_duration_seconds_count", type="map") == 1
    assert value(registry, "kubemr_task_duration_seconds_sum", type="map") == 20.0
    assert value(registry, "kubemr_task_duration_seconds_bucket", type="map", le="30.0") == 1
    assert value(registry, "kubemr_task_duration_seconds_count", type="reduce") == 0


def test_jobs_by_phase_follow_the_listing():
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.jobs_listed([job("a"), job("b", "Mapping"), job("c", "Succeeded"), job("d", "Succeeded"),
                   job("e", "Exploded")])
    shown = {p: value(registry, "kubemr_jobs", phase=p)
             for p in ("Pending", "Mapping", "Reducing", "Succeeded", "Failed", "Other")}
    assert shown == {"Pending": 1, "Mapping": 1, "Reducing": 0, "Succeeded": 2, "Failed": 0,
                     "Other": 1}
    m.jobs_listed([job("c", "Succeeded")])
    assert value(registry, "kubemr_jobs", phase="Mapping") == 0
    assert value(registry, "kubemr_jobs", phase="Other") == 0
    assert value(registry, "kubemr_jobs", phase="Succeeded") == 1


def test_a_replica_that_stops_leading_shows_no_jobs_and_counts_from_when_it_leads_again():
    registry = CollectorRegistry()
    m = Metrics(registry, since=0)
    assert value(registry, "kubemr_leader") == 0
    m.leading(True)
    assert value(registry, "kubemr_leader") == 1 and m.since > 0
    m.jobs_listed([job("a", "Mapping")])
    m.decided(job("a"), [Task("map", 0)], {}, Decision("Mapping", waiting=3), time.time())
    m.leading(False)
    assert value(registry, "kubemr_leader") == 0
    assert value(registry, "kubemr_jobs", phase="Mapping") == 0
    assert value(registry, "kubemr_tasks_waiting", reason="parallelism") == 0
    m.decided(job("a"), [Task("map", 0)], {}, Decision("Mapping", waiting=3), time.time())
    assert value(registry, "kubemr_tasks_waiting", reason="parallelism") == 0
    before = time.time()
    m.leading(True)
    assert m.since >= before


def running_task(kind: str, index: int, state: str = RUNNING) -> Task:
    task = Task(kind, index)
    task.attempt(1).state = state
    return task


def test_waiting_tasks_are_summed_over_jobs_and_forgotten_when_a_job_ends_or_goes():
    registry = CollectorRegistry()
    m = Metrics(registry, since=0)
    now = time.time()
    pending = [running_task("map", 0, PENDING), running_task("map", 1, PENDING),
               running_task("map", 2)]
    m.decided(job("a"), pending, {}, Decision("Mapping", waiting=4), now)
    m.decided(job("b"), [running_task("map", 0, PENDING)], {}, Decision("Mapping", waiting=1),
              now)
    assert value(registry, "kubemr_tasks_waiting", reason="parallelism") == 5
    assert value(registry, "kubemr_tasks_waiting", reason="pending") == 3
    m.decided(job("a"), pending, {}, Decision("Succeeded"), now)
    assert value(registry, "kubemr_tasks_waiting", reason="parallelism") == 1
    m.jobs_listed([job("c", "Mapping")])  # b was deleted
    assert value(registry, "kubemr_tasks_waiting", reason="parallelism") == 0
    assert value(registry, "kubemr_tasks_waiting", reason="pending") == 0


def test_start_latency_is_observed_once_from_the_first_container_start():
    registry = CollectorRegistry()
    m = Metrics(registry, since=0)
    created = time.time() - 100
    a = job("a", created=created)
    tasks = [running_task("map", 0, PENDING)]
    m.decided(a, tasks, {}, Decision("Mapping"), time.time())
    assert value(registry, "kubemr_job_start_latency_seconds_count") == 0  # nothing runs yet
    tasks = [running_task("map", 0), running_task("map", 1)]
    pods = {("map", 0, 1): {"status": {"containerStatuses": [
        {"state": {"running": {"startedAt": iso(created + 42)}}}]}},
            ("map", 1, 1): {"status": {"containerStatuses": [
                {"state": {"running": {"startedAt": iso(created + 50)}}}]}}}
    m.decided(a, tasks, pods, Decision("Mapping"), time.time())
    m.decided(a, tasks, pods, Decision("Mapping"), time.time())
    assert value(registry, "kubemr_job_start_latency_seconds_count") == 1
    assert value(registry, "kubemr_job_start_latency_seconds_sum") == pytest.approx(42, abs=1)


def test_start_latency_is_left_to_the_leader_that_saw_the_job_start():
    registry = CollectorRegistry()
    m = Metrics(registry, since=time.time())
    committed = Task("map", 0, committed=True, committed_attempt=1)
    committed.attempt(1).launched = time.time() - 60  # the COMMIT's start: before `since`
    m.decided(job("a", created=time.time() - 70), [committed], {}, Decision("Mapping"),
              time.time())
    assert value(registry, "kubemr_job_start_latency_seconds_count") == 0


def test_a_job_duration_is_observed_by_the_write_that_ends_the_job_only():
    registry = CollectorRegistry()
    m = Metrics(registry)
    a = job("a")
    running = {"phase": "Reducing", "startTime": iso(time.time() - 90)}
    m.status_written(a, running, {"phase": "Reducing"})
    m.status_written(a, running, {"phase": "Succeeded"})
    m.status_written(a, {"phase": "Succeeded"}, {"phase": "Succeeded"})  # a later write
    m.status_written(job("b", created=time.time() - 5), {}, {"phase": "Failed"})
    assert value(registry, "kubemr_job_duration_seconds_count", phase="Succeeded") == 1
    assert value(registry, "kubemr_job_duration_seconds_sum", phase="Succeeded") == \
        pytest.approx(90, abs=2)
    assert value(registry, "kubemr_job_duration_seconds_bucket", phase="Succeeded",
                 le="60.0") == 0
    assert value(registry, "kubemr_job_duration_seconds_count", phase="Failed") == 1


def test_a_pass_is_timed_whether_or_not_it_raises(registry):
    @metrics_module.timed_pass
    def run(fail: bool):
        if fail:
            raise RuntimeError("the pass failed")

    run(False)
    with pytest.raises(RuntimeError):
        run(True)
    assert value(registry, "kubemr_reconcile_duration_seconds_count") == 2


def test_the_metrics_are_served_over_http_and_a_busy_port_is_only_a_warning(caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics_module.serve(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert "kubemr_leader " in text and "# TYPE kubemr_task_attempts_total counter" in text
    assert "_created" not in text
    metrics_module.serve(port)  # taken by the first
    assert "cannot serve metrics" in caplog.text
    metrics_module.serve(0)  # off


# -- the pass counts each event once ----------------------------------------------------------

@pytest.fixture
def setup(tmp_path):
    """A word count over 4 files (4 map tasks) with 2 reducers, as tests/unit/test_reconcile.py."""
    data = tmp_path / "in"
    data.mkdir()
    for i in range(4):
        (data / f"f{i}.txt").write_text(f"alpha beta f{i}\n" * 80)  # 1120 bytes
    spec = make_job(tmp_path, WORDCOUNT, str(data) + "/", reducer="reducer", reducers=2,
                    speculation=False, backoffSeconds=0,
                    input={"splitSize": 1120}).spec  # one map task per file
    settings = Settings(work_uri=f"file://{tmp_path}/work", heartbeat_seconds=1.0,
                        local_paths=True)
    scratch = tmp_path / "pods"
    scratch.mkdir()
    reconcile_module._caches.clear()
    return tmp_path, spec, settings, scratch


FAILS_ONCE = WORDCOUNT + """
import os

def fails_once(offset, line):
    flag = os.path.join(FLAGS, line.split()[-1])  # one per input file, so per map task
    if not os.path.exists(flag):
        open(flag, "w").close()
        raise ValueError("the first attempt fails")
    yield from mapper(offset, line)
"""


def test_a_job_run_to_success_counts_each_attempt_and_its_end_once(setup, registry):
    tmp_path, spec, settings, scratch = setup
    new = job_object(spec)
    new["metadata"]["creationTimestamp"] = iso(time.time())
    cluster = StandInCluster(new, scratch, settings)
    status = run_to_the_end(new, cluster, settings)
    assert status["phase"] == "Succeeded" and status["attempts"] == 6
    attempts = "kubemr_task_attempts_total"
    assert value(registry, attempts, type="map", result="succeeded") == 4
    assert value(registry, attempts, type="reduce", result="succeeded") == 2
    assert value(registry, "kubemr_task_duration_seconds_count", type="map") == 4
    assert value(registry, "kubemr_task_duration_seconds_count", type="reduce") == 2
    assert value(registry, "kubemr_job_duration_seconds_count", phase="Succeeded") == 1
    assert value(registry, "kubemr_job_duration_seconds_count", phase="Failed") == 0
    assert value(registry, "kubemr_job_start_latency_seconds_count") == 1
    assert value(registry, "kubemr_reconcile_duration_seconds_count") >= 3
    assert value(registry, "kubemr_tasks_waiting", reason="parallelism") == 0
    assert value(registry, "kubemr_tasks_waiting", reason="pending") == 0
    reconcile_module.reconcile(new, cluster, settings, cluster.post_event)  # a pass too many
    assert value(registry, "kubemr_job_duration_seconds_count", phase="Succeeded") == 1


def test_each_failed_attempt_counts_its_class_once_however_many_passes_see_it(setup, registry):
    tmp_path, spec, settings, scratch = setup
    flags = tmp_path / "flags"
    flags.mkdir()
    spec = dict(spec, mapper="fails_once",
                code={"inline": f"FLAGS = {str(flags)!r}\n" + FAILS_ONCE})
    new = job_object(spec)
    cluster = StandInCluster(new, scratch, settings)
    status = run_to_the_end(new, cluster, settings)
    assert status["phase"] == "Succeeded" and status["attempts"] == 4 * 2 + 2
    attempts = "kubemr_task_attempts_total"
    assert value(registry, attempts, type="map", result="UserError") == 4
    assert value(registry, attempts, type="map", result="succeeded") == 4
    assert value(registry, attempts, type="reduce", result="succeeded") == 2
    assert len([e for e in cluster.events if e[1] == "TaskFailed"]) == 4


def test_a_job_that_fails_counts_every_failed_attempt_and_ends_once(setup, registry):
    tmp_path, spec, settings, scratch = setup
    spec = dict(spec, mapper="broken", maxAttempts=2,
                code={"inline": WORDCOUNT + "\ndef broken(k, v):\n    raise KeyError(k)\n"})
    new = job_object(spec)
    cluster = StandInCluster(new, scratch, settings)
    status = run_to_the_end(new, cluster, settings)
    assert status["phase"] == "Failed" and status["failureClass"] == "UserError"
    failed = [e for e in cluster.events if e[1] == "TaskFailed"]
    assert len(failed) >= 2
    assert value(registry, "kubemr_task_attempts_total", type="map",
                 result="UserError") == len(failed)
    assert value(registry, "kubemr_task_attempts_total", type="map", result="succeeded") == 0
    assert value(registry, "kubemr_job_duration_seconds_count", phase="Failed") == 1
    assert value(registry, "kubemr_job_duration_seconds_count", phase="Succeeded") == 0


