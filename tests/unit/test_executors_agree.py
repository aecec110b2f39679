"""The same failures through both executors give the same decisions.

Each scenario runs one job twice: through the local runner (worker processes), and through the
operator's reconcile pass driving task "pods" that a small stand-in for the kubelet runs as the
same worker processes, reporting their end the way a pod's status does (exit code, termination
message, OOMKilled). The attempts that failed, their classes, and the output must agree.

The operator's pass here talks to a recorded-API stand-in, not a Kubernetes API server: this
checks the scheduling logic and the observation of pod states. The e2e suite runs the same
operator against a real cluster.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from kubemr_operator.config import Settings
from kubemr_operator.reconcile import reconcile, work_uri

from kubemr.engine import commit
from kubemr.errors import JobFailed
from kubemr.runtime import local
from kubemr.runtime.local import parse_quantity, run_local
from kubemr.spec.names import LABEL_JOB_UID
from tests.conftest import make_job, read_output

FIRST_ATTEMPT_ONLY = """
import os, signal, sys, time
def first(what):
    marker = os.path.join({flags!r}, what)
    if os.path.exists(marker):
        return False
    open(marker, "w").close()
    return True
"""

SCENARIOS = {
    "raise": "if line.endswith('0') and first('m'): raise ValueError('first attempt fails')",
    "exit": "if line.endswith('0') and first('m'): os._exit(3)",
    "kill": "if line.endswith('0') and first('m'): os.kill(os.getpid(), signal.SIGKILL)",
    "timeout": "if line.endswith('0') and first('m'): time.sleep(60)",
    "out of memory": "if line.endswith('0') and first('m'): b = bytearray(2 << 30)",
    "lost map output": "",
}
EXPECTED = {
    "raise": [("map", 0, 1, "UserError")],
    "exit": [("map", 0, 1, "UserError")],
    "kill": [("map", 0, 1, "Killed")],
    "timeout": [("map", 0, 1, "Timeout")],
    "out of memory": [("map", 0, 1, "OOMKilled")],
    "lost map output": [("map", 0, 1, "MapOutputLost"), ("reduce", 0, 1, "MapOutputLost")],
}


def job_for(tmp_path, scenario: str, run: str):
    flags = tmp_path / f"flags-{run}"
    flags.mkdir()
    code = FIRST_ATTEMPT_ONLY.format(flags=str(flags)) + f"""
def mapper(offset, line):
    {SCENARIOS[scenario] or "pass"}
    for word in line.split():
        yield word, 1

def reducer(word, counts):
    yield word, sum(counts)
"""
    data = tmp_path / "in"
    if not data.exists():
        data.mkdir()
        for i in range(3):
            (data / f"f{i}.txt").write_text(f"alpha beta gamma {i}\n" * 20)
    out = tmp_path / f"out-{run}"
    return make_job(tmp_path, code, str(data) + "/", name="agree", reducer="reducer",
                    reducers=1, maxAttempts=2, backoffSeconds=0, taskTimeoutSeconds=10,
                    resources={"limits": {"memory": "1Gi"}},
                    output={"uri": str(out) + "/"})


WANT = Counter({"alpha": 60, "beta": 60, "gamma": 60, "0": 20, "1": 20, "2": 20})


def counts_in(prefix) -> Counter:
    return Counter({k: int(v) for k, v in (line.split("\t") for line in read_output(prefix))})


def lose_map_output(work: str) -> None:
    record = commit.read_commit(work, "map", 0)
    uri = record["data"]
    os.unlink(uri[len("file://"):])


# -- the local runner ------------------------------------------------------------------------

def run_locally(tmp_path, scenario, monkeypatch):
    job = job_for(tmp_path, scenario, "local")
    if scenario == "lost map output":
        launch = local.LocalExecutor.launch
        lost = []

        def launch_losing_once(self, task, document, now):
            if task.kind == "reduce" and not lost:
                lose_map_output(document["work"])
                lost.append(True)
            return launch(self, task, document, now)

        monkeypatch.setattr(local.LocalExecutor, "launch", launch_losing_once)
    result = run_local(job, workers=2)
    failed = [(a.task_type, a.index, a.attempt, a.failure) for a in result.attempts if not a.ok]
    return sorted(failed), counts_in(tmp_path / "out-local")


# -- the operator's pass, with a stand-in for the API server and the kubelet -------------------

def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StandInCluster:
    """Pods as worker processes; pod status as the kubelet would report it."""

    def __init__(self, job: dict, scratch, settings: Settings, lose_before_reduce: bool):
        self.job = job
        self.scratch = scratch
        self.settings = settings
        self.pods: dict[str, dict] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.events: list[tuple[str, str, str]] = []
        self.lose_before_reduce = lose_before_reduce

    # The calls the operator makes (kubemr_operator.kube.Kube).
    def list_pods(self, namespace, selector, unfinished=False):
        self.poll()
        key, _, value = selector.partition("=")
        return [json.loads(json.dumps(p)) for p in self.pods.values()
                if p["metadata"]["labels"].get(key) == value
                and not (unfinished and p["status"]["phase"] == "Succeeded")]

    def ready_nodes(self):
        return {"node-a"}

    def create_pod(self, pod):
        name = pod["metadata"]["name"]
        if name in self.pods:
            return
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        document = json.loads(env["KUBEMR_TASK"])
        if document["type"] == "reduce" and self.lose_before_reduce:
            lose_map_output(document["work"])
            self.lose_before_reduce = False
        path = os.path.join(self.scratch, name)
        with open(path + ".json", "w") as f:
            json.dump(document, f)
        limit = parse_quantity(container["resources"]["limits"]["memory"])
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "kubemr.runtime.worker", path + ".json", "--result",
             path + ".result"],
            env=dict(os.environ, KUBEMR_SCRATCH=str(self.scratch),
                     KUBEMR_HEARTBEAT_SECONDS=env["KUBEMR_HEARTBEAT_SECONDS"],
                     PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
        pod = json.loads(json.dumps(pod))
        pod["metadata"]["creationTimestamp"] = iso(time.time())
        pod["spec"]["nodeName"] = "node-a"
        pod["status"] = {"phase": "Running"}
        self.pods[name] = pod

    def delete_pod(self, namespace, name):
        process = self.processes.pop(name, None)
        if process:
            process.kill()
            process.wait()
        self.pods.pop(name, None)

    def patch_status(self, namespace, name, status):
        self.job["status"] = {**self.job.get("status", {}), **status}

    def delete_job(self, namespace, name):
        raise AssertionError("no TTL in these jobs")

    def poll(self):
        for name, process in list(self.processes.items()):
            code = process.poll()
            if code is None:
                continue
            del self.processes[name]
            try:
                with open(os.path.join(self.scratch, name + ".result")) as f:
                    message = f.read()
            except OSError:
                message = ""
            terminated = {"exitCode": 137 if code < 0 else code, "message": message,
                          "finishedAt": iso(time.time())}
            self.pods[name]["status"] = {
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [{"state": {"terminated": terminated}}]}

    def post_event(self, job, event_type, reason, message):
        self.events.append((event_type, reason, message))


def run_through_the_operator(tmp_path, scenario):
    spec = job_for(tmp_path, scenario, "operator")
    job = {"apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
           "metadata": {"name": "agree", "namespace": "team", "uid": "0a1b2c3d4e5f",
                        "generation": 1},
           "spec": json.loads(json.dumps(spec.spec)), "status": {}}
    settings = Settings(work_uri=f"file://{tmp_path}/work", heartbeat_seconds=1.0)
    scratch = tmp_path / "pods"
    scratch.mkdir()
    cluster = StandInCluster(job, scratch, settings, scenario == "lost map output")
    deadline = time.time() + 120
    try:
        while job["status"].get("phase") not in ("Succeeded", "Failed"):
            assert time.time() < deadline, f"the job did not end: {job['status']}"
            reconcile(job, cluster, settings, cluster.post_event)
            time.sleep(0.05)
    finally:
        for name in list(cluster.processes):
            cluster.delete_pod("team", name)
    assert job["status"]["phase"] == "Succeeded", job["status"]
    failed = sorted(
        (kind, index, attempt, failure)
        for _, reason, message in cluster.events if reason == "TaskFailed"
        for kind, index, attempt, failure in [_parse_task_failed(message)])
    assert not os.path.exists(work_uri(job, settings)[len("file://"):]), "work left behind"
    assert all(p["metadata"]["labels"][LABEL_JOB_UID] == "0a1b2c3d4e5f"
               for p in cluster.pods.values())
    return failed, counts_in(tmp_path / "out-operator")


def _parse_task_failed(message: str):
    # "map task 0 attempt 1 failed (UserError) on node-a: ..."
    words = message.split()
    return words[0], int(words[2]), int(words[4]), words[6].strip("()")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_both_executors_make_the_same_decisions(tmp_path, scenario, monkeypatch):
    local_failed, local_counts = run_locally(tmp_path, scenario, monkeypatch)
    operator_failed, operator_counts = run_through_the_operator(tmp_path, scenario)
    assert local_failed == EXPECTED[scenario]
    assert operator_failed == EXPECTED[scenario]
    assert local_counts == WANT and operator_counts == WANT


def test_a_task_failing_every_attempt_fails_the_job_alike(tmp_path):
    code = "def mapper(offset, line):\n    raise ValueError('never')\n"
    data = tmp_path / "in"
    data.mkdir()
    (data / "f.txt").write_text("x\n")
    job = make_job(tmp_path, code, str(data) + "/", maxAttempts=2, backoffSeconds=0)
    with pytest.raises(JobFailed, match=r"map task 0 failed on all 2 attempts \(UserError\)"):
        run_local(job)
