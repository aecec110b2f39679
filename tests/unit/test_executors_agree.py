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

import os
from collections import Counter

import pytest
from kubemr_operator.config import Settings
from kubemr_operator.reconcile import work_uri

from kubemr.engine import commit
from kubemr.errors import JobFailed
from kubemr.runtime.local import run_local
from kubemr.spec.names import LABEL_JOB_UID
from tests.conftest import make_job, read_output
from tests.unit.standin import (
    StandInCluster,
    job_object,
    lose_before_the_first_reduce,
    run_to_the_end,
)

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
                    speculation=False,
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
        lose_before_the_first_reduce(monkeypatch, lose_map_output)
    result = run_local(job, workers=2)
    failed = [(a.kind, a.index, a.number, a.failure) for a in result.attempts if not a.ok]
    return sorted(failed), counts_in(tmp_path / "out-local")


# -- the operator's pass, with a stand-in for the API server and the kubelet -------------------

def run_through_the_operator(tmp_path, scenario):
    spec = job_for(tmp_path, scenario, "operator")
    job = job_object(spec.spec, name="agree")
    settings = Settings(work_uri=f"file://{tmp_path}/work", heartbeat_seconds=1.0,
                        local_paths=True)
    scratch = tmp_path / "pods"
    scratch.mkdir()
    cluster = StandInCluster(job, scratch, settings,
                             lose_map_output if scenario == "lost map output" else None)
    assert run_to_the_end(job, cluster, settings)["phase"] == "Succeeded", job["status"]
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
