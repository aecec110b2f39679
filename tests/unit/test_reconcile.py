"""The operator's reconcile pass against a file:// store and a stand-in for the API server: a job
ends right or not at all whatever happens between two of its writes."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path

import pytest
from kubemr_operator import reconcile as reconcile_module
from kubemr_operator.config import Settings
from kubemr_operator.reconcile import reconcile, sweep_orphans, work_uri
from kubernetes.client.rest import ApiException

from kubemr.engine import commit
from kubemr.engine.commit import LOCK
from tests.conftest import make_job, read_output
from tests.unit.standin import StandInCluster, job_object, run_to_the_end

WORDCOUNT = """
def mapper(offset, line):
    for word in line.split():
        yield word, 1

def shouting(offset, line):
    for word in line.split():
        yield word.upper(), 1

def reducer(word, counts):
    yield word, sum(counts)
"""
WANT = Counter({"alpha": 320, "beta": 320, "f0": 80, "f1": 80, "f2": 80, "f3": 80})


@pytest.fixture
def setup(tmp_path):
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


def counts(tmp_path) -> Counter:
    return Counter({k: int(v) for k, v in (line.split("\t")
                                            for line in read_output(tmp_path / "out"))})


def test_a_job_runs_to_its_output_and_leaves_no_work_behind(setup):
    tmp_path, spec, settings, scratch = setup
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    status = run_to_the_end(job, cluster, settings)
    assert status["phase"] == "Succeeded" and status["mapsDone"] == "4/4"
    assert status["attempts"] == 6 and status["reducesDone"] == "2/2"
    assert [c["status"] for c in status["conditions"]] == ["False", "True", "False", "False"]
    assert counts(tmp_path) == WANT
    assert not os.path.exists(work_uri(job, settings)[len("file://"):])


def test_editing_the_spec_mid_job_changes_nothing_but_the_mutable_fields(setup):
    tmp_path, spec, settings, scratch = setup
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    reconcile(job, cluster, settings, cluster.post_event)  # planned and launched
    job["spec"].update(reducers=1, mapper="shouting", parallelism=1)
    status = run_to_the_end(job, cluster, settings)
    assert status["phase"] == "Succeeded"
    assert sorted(os.listdir(tmp_path / "out")) == ["_SUCCESS", "part-00000", "part-00001"]
    assert counts(tmp_path) == WANT


def test_a_status_write_that_fails_at_success_repeats_to_the_same_end(setup):
    tmp_path, spec, settings, scratch = setup
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    patch = cluster.patch_status
    failures = []

    def flaky(namespace, name, status, resource_version=None):
        if status["phase"] == "Succeeded" and len(failures) < 3:
            failures.append(status)
            reconcile_module._caches.clear()  # as if the operator restarted, too
            raise ApiException(status=500, reason="etcd timeout")
        patch(namespace, name, status, resource_version)

    cluster.patch_status = flaky

    def run_once():
        try:
            reconcile(job, cluster, settings, cluster.post_event)
        except ApiException:
            pass

    while job["status"].get("phase") not in ("Succeeded", "Failed"):
        run_once()
    cluster.stop_all()
    assert len(failures) == 3
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert job["status"]["attempts"] == 6, "a committed task ran again"
    assert counts(tmp_path) == WANT


def test_a_status_the_api_server_refuses_for_good_fails_the_job(setup):
    tmp_path, spec, settings, scratch = setup
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    patch = cluster.patch_status

    def refusing(namespace, name, status, resource_version=None):
        if status.get("failureClass") != "StatusRefused":
            raise ApiException(status=422, reason="Unprocessable Entity")
        patch(namespace, name, status, resource_version)

    cluster.patch_status = refusing
    status = run_to_the_end(job, cluster, settings)
    assert status["phase"] == "Failed" and status["failureClass"] == "StatusRefused"
    assert "refused the job's status" in status["message"]


def test_an_operator_restart_before_every_pass_reruns_nothing(setup):
    tmp_path, spec, settings, scratch = setup
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    status = run_to_the_end(job, cluster, settings, between=reconcile_module._caches.clear)
    assert status["phase"] == "Succeeded" and status["attempts"] == 6
    assert counts(tmp_path) == WANT


def test_nothing_starts_once_the_job_is_being_deleted(setup):
    tmp_path, spec, settings, scratch = setup
    job = job_object(spec)
    job["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    cluster = StandInCluster(job, scratch, settings)
    reconcile(job, cluster, settings, cluster.post_event)
    assert cluster.pods == {} and job["status"] == {}


def test_a_job_created_again_under_the_same_name_adopts_nothing(setup):
    tmp_path, spec, settings, scratch = setup
    old = job_object(spec, uid="old000000000")
    cluster = StandInCluster(old, scratch, settings)
    reconcile(old, cluster, settings, cluster.post_event)
    old_pods = set(cluster.pods)
    new = job_object(spec, uid="new111111111")
    cluster.job = new
    status = run_to_the_end(new, cluster, settings)
    assert status["phase"] == "Succeeded" and status["attempts"] == 6
    assert old_pods.isdisjoint(p for p in cluster.pods if "new11" in p)
    assert counts(tmp_path) == WANT


def test_bad_input_fails_at_once_with_the_problem_named(setup):
    tmp_path, spec, settings, scratch = setup
    spec = json.loads(json.dumps(spec))
    spec["input"]["uris"] = [f"file://{tmp_path}/missing/"]
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    status = run_to_the_end(job, cluster, settings, timeout=10)
    assert status["phase"] == "Failed" and status["failureClass"] == "InvalidInput"
    assert "missing" in status["message"]


def test_a_task_failing_on_every_attempt_fails_the_job_and_stops_its_pods(setup):
    tmp_path, spec, settings, scratch = setup
    spec = dict(spec, mapper="broken", maxAttempts=2,
                code={"inline": WORDCOUNT + "\ndef broken(k, v):\n    raise KeyError(k)\n"})
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    status = run_to_the_end(job, cluster, settings)
    assert status["phase"] == "Failed" and status["failureClass"] == "UserError"
    assert "failed on all 2 attempts (UserError)" in status["message"]
    assert "KeyError" in status["message"]
    assert not (tmp_path / "out").exists(), "the output lock is released"
    assert not os.path.exists(work_uri(job, settings)[len("file://"):])
    assert [e for e in cluster.events if e[1] == "TaskFailed"]


@pytest.mark.parametrize("named", ["another tenant's object", "a path out of the prefix"])
def test_a_forged_commit_naming_data_outside_the_job_is_neither_copied_nor_deleted(setup, named):
    """A task pod writes its own COMMIT; one that names another tenant's object (as code with
    the job's credentials could write), or a name under the job's prefix whose `..` leads out
    of it, fails the job, and that object is not touched."""
    tmp_path, spec, settings, scratch = setup
    secret = tmp_path / "other-team" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not yours\n")
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    work = work_uri(job, settings)[len("file://"):]
    data = f"file://{secret}" if named == "another tenant's object" else \
        f"file://{work}/reduce-00001/" + "../" * len(Path(work).relative_to(tmp_path).parts) + \
        "../other-team/secret.txt"

    # Planted as a task could, with the job's credentials: a COMMIT for reduce task 1.
    os.makedirs(os.path.join(work, "reduce-00001"))
    with open(os.path.join(work, "reduce-00001", "COMMIT"), "w") as f:
        json.dump({"data": data, "attempt": 1, "counters": {}}, f)
    assert Path(data[len("file://"):]).resolve() == secret
    status = run_to_the_end(job, cluster, settings)
    assert status["phase"] == "Failed" and status["failureClass"] == "UntrustedCommit"
    assert data in status["message"]
    assert secret.read_text() == "not yours\n"
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_a_commit_naming_data_that_is_gone_fails_the_job_and_changes_nothing(setup):
    """A reduce COMMIT naming an object of the job's own prefix that does not exist (forged,
    or its data deleted) fails the job naming it, before the earlier output is touched, rather
    than failing every pass for ever."""
    tmp_path, spec, settings, scratch = setup
    earlier = tmp_path / "out"
    earlier.mkdir()
    (earlier / "part-00000").write_text("earlier\t1\n")
    job = job_object(dict(spec, output=dict(spec["output"], overwrite=True)))
    cluster = StandInCluster(job, scratch, settings)
    work = work_uri(job, settings)[len("file://"):]
    gone = f"file://{work}/reduce-00001/attempt-7"
    os.makedirs(os.path.join(work, "reduce-00001"))
    with open(os.path.join(work, "reduce-00001", "COMMIT"), "w") as f:
        json.dump({"data": gone, "attempt": 7, "counters": {}}, f)
    status = run_to_the_end(job, cluster, settings, timeout=60)
    assert status["phase"] == "Failed" and status["failureClass"] == "StorageError", status
    assert f"names {gone!r}, which does not exist" in status["message"]
    assert os.listdir(earlier) == ["part-00000"]
    assert (earlier / "part-00000").read_text() == "earlier\t1\n"


def test_the_sweep_deletes_the_work_of_jobs_that_are_gone_and_only_that(setup):
    tmp_path, spec, settings, scratch = setup
    live = job_object(spec, uid="live00000000")
    gone = job_object(dict(spec, output={"uri": f"{tmp_path}/gone-out/", "format": "text"}),
                      name="gone-job", uid="dead00000000")
    cluster = StandInCluster(live, scratch, settings)
    cluster.job = gone
    for job in (live, gone):
        reconcile(job, cluster, settings, cluster.post_event)  # plans, launches
    cluster.stop_all()
    del cluster.jobs["gone-job"]  # deleted while no operator ran
    (tmp_path / "work" / "code" / "team").mkdir(parents=True)
    (tmp_path / "work" / "code" / "team" / "bundle.pkl").write_bytes(b"x")
    assert (tmp_path / "gone-out" / LOCK).exists()
    assert sweep_orphans(cluster, settings) == ["team/gone-job-dead0000"]
    assert os.path.exists(work_uri(live, settings)[len("file://"):] + "/plan.json")
    assert not os.path.exists(work_uri(gone, settings)[len("file://"):])
    assert (tmp_path / "work" / "code" / "team" / "bundle.pkl").exists()
    assert not (tmp_path / "gone-out").exists(), "the gone job's output lock is released"
    assert (tmp_path / "out" / LOCK).exists(), "the live job keeps its own"


@pytest.mark.parametrize("change, named", [
    ({"input": {"uris": ["/data/books/"], "format": "text", "splitSize": 1 << 20}},
     "spec.input.uris[0]"),
    ({"output": {"uri": "file:///tmp/out/", "format": "text"}}, "spec.output.uri"),
    ({"intermediate": {"uri": "scratch/work"}}, "spec.intermediate.uri"),
])
def test_local_paths_are_refused_on_the_cluster(setup, change, named):
    tmp_path, spec, _, scratch = setup
    settings = Settings(work_uri=f"file://{tmp_path}/work")  # as the operator runs in a cluster
    spec = {**json.loads(json.dumps(spec)), "input": {"uris": ["s3://books/in/"],
                                                      "format": "text", "splitSize": 1 << 20},
            "output": {"uri": "s3://books/out/", "format": "text"}, **change}
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    reconcile(job, cluster, settings, cluster.post_event)
    status = job["status"]
    assert status["phase"] == "Failed" and status["failureClass"] == "InvalidInput"
    assert named in status["message"] and "s3://" in status["message"]
    assert cluster.pods == {}


def test_a_split_size_that_would_plan_too_many_maps_fails_in_one_pass(setup):
    tmp_path, spec, settings, scratch = setup
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "f.txt", "wb") as f:
        f.truncate(10 << 20)  # 10 MiB: 10 million splits of one byte
    spec = json.loads(json.dumps(spec))
    spec["input"].update(uris=[f"file://{big}/"], splitSize=1)
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    reconcile(job, cluster, settings, cluster.post_event)
    assert job["status"]["phase"] == "Failed"
    assert "more than 100000 map tasks: raise input.splitSize" in job["status"]["message"]


def test_a_stale_copy_of_a_finished_job_changes_nothing(setup):
    """Found by the chaos suite: a pass over a copy of the job listed before it succeeded
    planned it again and overwrote Succeeded with InvalidInput (its own _SUCCESS was there)."""
    tmp_path, spec, settings, scratch = setup
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    stale = json.loads(json.dumps(job))
    reconcile(job, cluster, settings, cluster.post_event)
    stale["status"] = json.loads(json.dumps(job["status"]))
    assert run_to_the_end(job, cluster, settings)["phase"] == "Succeeded"
    reconcile(stale, cluster, settings, cluster.post_event)
    assert job["status"]["phase"] == "Succeeded"
    assert counts(tmp_path) == WANT


def test_a_job_whose_success_was_committed_but_not_recorded_ends_succeeded(setup):
    tmp_path, spec, settings, scratch = setup
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    assert run_to_the_end(job, cluster, settings)["phase"] == "Succeeded"
    job["status"] = {}  # the status write was lost after the output and the cleanup
    reconcile_module._caches.clear()
    reconcile(job, cluster, settings, cluster.post_event)
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert counts(tmp_path) == WANT


def test_a_missing_code_bundle_fails_at_planning(setup):
    tmp_path, spec, settings, scratch = setup
    spec = json.loads(json.dumps(spec))
    spec["code"] = {"pickle": f"file://{tmp_path}/absent.pkl"}
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    reconcile(job, cluster, settings, cluster.post_event)
    assert job["status"]["phase"] == "Failed" and cluster.pods == {}
    assert "spec.code.pickle names" in job["status"]["message"]


def test_suspend_stops_the_pods_and_resume_goes_on_from_the_committed_tasks(setup):
    tmp_path, spec, settings, scratch = setup
    spec = dict(spec, maxAttempts=1, mapper="slow",
                code={"inline": WORDCOUNT + "\nimport time\ndef slow(k, v):\n"
                      "    time.sleep(0.3)\n    yield from mapper(k, v)\n"})
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    reconcile(job, cluster, settings, cluster.post_event)
    assert len(cluster.pods) == 4
    job["spec"]["suspend"] = True
    reconcile(job, cluster, settings, cluster.post_event)
    status = job["status"]
    assert status["phase"] == "Suspended"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Suspended"] == "True"
    assert cluster.processes == {}
    reconcile(job, cluster, settings, cluster.post_event)
    assert cluster.processes == {}  # nothing starts while suspended
    job["spec"]["suspend"] = False
    status = run_to_the_end(job, cluster, settings)
    assert status["phase"] == "Succeeded"  # maxAttempts 1: the stopped attempts used none
    assert counts(tmp_path) == WANT


def test_a_job_whose_storage_secret_is_missing_fails_naming_it(setup):
    tmp_path, spec, _, scratch = setup
    settings = Settings(work_uri=f"file://{tmp_path}/work", local_paths=True)
    job = job_object(dict(spec, storage={"secretName": "absent"}))
    cluster = StandInCluster(job, scratch, settings)
    cluster.secrets = {("team", "absent"): None}
    reconcile(job, cluster, settings, cluster.post_event)
    assert job["status"]["phase"] == "Failed" and cluster.pods == {}
    assert "spec.storage.secretName: Secret 'absent' in namespace team" in job["status"]["message"]


def test_the_job_event_handler_runs_a_pass_and_cleans_up_a_deleted_job(setup, monkeypatch):
    """The kopf handler gets kopf's own body type: it must hand the pass plain dicts."""
    import kopf
    from kubemr_operator import handlers

    tmp_path, spec, settings, scratch = setup
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    monkeypatch.setattr(handlers, "_kube", cluster)
    monkeypatch.setattr(handlers, "settings", settings)
    handlers.job_changed(type="ADDED", body=kopf.Body(json.loads(json.dumps(job))),
                         namespace="team")
    assert len(cluster.pods) == 4 and job["status"]["phase"] == "Mapping"
    cluster.stop_all()
    handlers.job_changed(type="DELETED", body=kopf.Body(json.loads(json.dumps(job))),
                         namespace="team")
    assert not os.path.exists(work_uri(job, settings)[len("file://"):])
    assert not (tmp_path / "out").exists(), "the output lock is released"


def test_storage_that_cannot_be_reached_at_planning_delays_the_job(setup, monkeypatch):
    """A (per-node) MinIO that is down when the job is planned: the job waits, not fails."""
    tmp_path, spec, _, scratch = setup
    monkeypatch.setenv("KUBEMR_S3_BUCKET_ENDPOINTS", '{"node-down": "http://127.0.0.1:9"}')
    settings = Settings(work_uri=f"file://{tmp_path}/work", local_paths=True)
    spec = json.loads(json.dumps(spec))
    spec["input"]["uris"] = ["s3://node-down/in/"]
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    for _ in range(2):
        reconcile(job, cluster, settings, cluster.post_event)
    assert job["status"].get("phase") not in ("Failed", "Succeeded") and cluster.pods == {}
    assert any(e[1] == "StorageUnavailable" for e in cluster.events)


def test_a_second_job_on_a_held_output_fails_at_planning_naming_the_holder(setup):
    tmp_path, spec, settings, scratch = setup
    first = job_object(spec, name="first", uid="first0000000")
    second = job_object(dict(spec, output=dict(spec["output"], overwrite=True)),
                        name="second", uid="second000000")
    cluster = StandInCluster(first, scratch, settings)
    cluster.job = second
    reconcile(first, cluster, settings, cluster.post_event)  # planned: holds the output
    reconcile(second, cluster, settings, cluster.post_event)
    status = second["status"]
    assert status["phase"] == "Failed" and status["failureClass"] == "InvalidInput"
    assert "is in use by job team/first (uid first0000000" in status["message"]
    assert not [p for p in cluster.pods if p.startswith("second")]
    assert run_to_the_end(first, cluster, settings)["phase"] == "Succeeded"
    assert counts(tmp_path) == WANT
    assert sorted(os.listdir(tmp_path / "out")) == ["_SUCCESS", "part-00000", "part-00001"]


def test_an_overwrite_next_to_a_foreign_object_fails_at_planning_and_deletes_nothing(setup):
    tmp_path, spec, settings, scratch = setup
    (tmp_path / "out" / "keep").mkdir(parents=True)
    (tmp_path / "out" / "keep" / "x").write_text("not kubemr's\n")
    job = job_object(dict(spec, output=dict(spec["output"], overwrite=True)))
    cluster = StandInCluster(job, scratch, settings)
    reconcile(job, cluster, settings, cluster.post_event)
    status = job["status"]
    assert status["phase"] == "Failed" and status["failureClass"] == "InvalidInput"
    assert "holds 'keep/x'" in status["message"]
    assert os.listdir(tmp_path / "out") == ["keep"]
    assert (tmp_path / "out" / "keep" / "x").read_text() == "not kubemr's\n"


def test_planning_again_after_a_restart_keeps_the_jobs_own_claim(setup):
    """The operator claimed the output, then stopped before plan.json was written."""
    tmp_path, spec, settings, scratch = setup
    job = job_object(spec)
    meta = job["metadata"]
    commit.claim_output(spec, commit.holder(meta["name"], meta["namespace"], meta["uid"]))
    cluster = StandInCluster(job, scratch, settings)
    assert run_to_the_end(job, cluster, settings)["phase"] == "Succeeded"
    assert counts(tmp_path) == WANT
    assert not (tmp_path / "out" / LOCK).exists()


@pytest.mark.parametrize("holder_after", ["Failed", "Succeeded", "deleted", "created again"])
def test_a_lock_left_by_a_job_that_has_ended_is_taken_over(setup, holder_after):
    """The operator stopped after the holder's status was written, before its cleanup, or
    the holder was deleted while no operator ran."""
    tmp_path, spec, settings, scratch = setup
    old = job_object(spec, name="old", uid="old000000000")
    commit.claim_output(spec, commit.holder("old", "team", "old000000000"))
    new = job_object(dict(spec, output=dict(spec["output"], overwrite=True)), name="new",
                     uid="new000000000")
    cluster = StandInCluster(new, scratch, settings)
    if holder_after in ("Failed", "Succeeded"):
        old["status"] = {"phase": holder_after}
        cluster.job = old
    elif holder_after == "created again":
        cluster.job = job_object(spec, name="old", uid="other0000000")
    assert run_to_the_end(new, cluster, settings)["phase"] == "Succeeded"
    assert counts(tmp_path) == WANT
    assert not (tmp_path / "out" / LOCK).exists()


def test_a_lock_held_by_a_running_job_or_a_local_run_is_not_taken_over(setup):
    tmp_path, spec, settings, scratch = setup
    running = job_object(spec, name="running", uid="run000000000")
    running["status"] = {"phase": "Mapping"}
    commit.claim_output(spec, commit.holder("running", "team", "run000000000"))
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    cluster.job = running
    reconcile(job, cluster, settings, cluster.post_event)
    assert "in use by job team/running" in job["status"]["message"]
    commit.release_output(spec, lambda claim: True)
    commit.claim_output(spec, commit.holder("laptop", "", "run-1", "local"))
    reconcile_module._caches.clear()
    again = job_object(spec, name="again", uid="again0000000")
    cluster.job = again
    reconcile(again, cluster, settings, cluster.post_event)
    assert "in use by a local run of job laptop" in again["status"]["message"]


def test_deleting_a_job_releases_its_output(setup):
    tmp_path, spec, settings, scratch = setup
    job = job_object(spec)
    cluster = StandInCluster(job, scratch, settings)
    reconcile(job, cluster, settings, cluster.post_event)
    cluster.stop_all()
    assert (tmp_path / "out" / LOCK).exists()
    reconcile_module.delete_work(job, settings)  # what the operator does on DELETED
    assert not (tmp_path / "out").exists()


def test_a_part_put_in_the_way_while_the_job_ran_fails_it_and_stays(setup):
    tmp_path, spec, settings, scratch = setup
    job = job_object(spec)

    def plant(work):
        (tmp_path / "out" / "part-00001").write_text("not kubemr's\n")

    cluster = StandInCluster(job, scratch, settings, lose_before_reduce=plant)
    status = run_to_the_end(job, cluster, settings)
    assert status["phase"] == "Failed" and status["failureClass"] == "InvalidInput"
    assert "holds 'part-00001', written there after the job was planned" in status["message"]
    assert os.listdir(tmp_path / "out") == ["part-00001"]
    assert (tmp_path / "out" / "part-00001").read_text() == "not kubemr's\n"


def test_a_pass_asked_for_while_another_runs_follows_it_once(monkeypatch):
    """A pod that ends while a pass runs gets a pass of its own right after, not at the next
    tick; the tick asks only for a pass when none runs."""
    passes, running, release = [], threading.Event(), threading.Event()

    class BlockingPass:
        def __init__(self, job, *_):
            pass

        def run(self):
            passes.append(1)
            running.set()
            release.wait(10)

    class ApiServer:
        def get_job(self, namespace, name):
            return job

    job = {"metadata": {"name": "j", "namespace": "ns", "uid": "uid-follow"}}
    monkeypatch.setattr(reconcile_module, "Pass", BlockingPass)

    def during_a_pass(*asks: bool) -> int:
        """Passes run when each of `asks` (if_idle) comes while a pass runs."""
        before = len(passes)
        running.clear()
        release.clear()
        first = threading.Thread(target=reconcile, args=(job, ApiServer(), Settings(), None))
        first.start()
        assert running.wait(10)
        for if_idle in asks:
            reconcile(job, ApiServer(), Settings(), None, if_idle)  # returns at once
        assert len(passes) == before + 1
        release.set()
        first.join(10)
        return len(passes) - before

    assert during_a_pass(True) == 1  # the tick: nothing more
    assert during_a_pass(False) == 2  # a pod ended
    assert during_a_pass(False, False, True) == 2  # two pods ended: one pass sees both
