"""Attempt logs: the worker's capture of its stdout and stderr, their bound, the store layout,
`kubemr logs` once the pods are gone, and when the operator deletes them and the pods."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass

import pytest
from kubemr_operator import reconcile as reconcile_module
from kubemr_operator.config import Settings
from kubemr_operator.reconcile import delete_work, logs_uri, sweep_orphans, work_uri

from kubemr.client import cli
from kubemr.client.sdk import Job
from kubemr.errors import JobFailed, KubemrError
from kubemr.runtime.local import run_local
from kubemr.runtime.logs import (
    LOG_LIMIT,
    _Ring,
    attempt_log_uri,
    job_logs_uri,
    parse_task,
    render,
    stored_attempts,
)
from kubemr.storage import store_for
from tests.conftest import job_document, make_job
from tests.unit.standin import StandInCluster, job_object, run_to_the_end

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))

# A task process's output of every kind: Python's print to both streams, a raw write to fd 1,
# C's printf, and a subprocess writing to both; then `lines` long lines, then THE END.
NOISY = textwrap.dedent("""
    import ctypes, os, subprocess, sys

    def noise(lines):
        print("python says hello")
        print("python warns", file=sys.stderr)
        sys.stdout.flush()
        os.write(1, b"a raw write to fd 1\\n")
        libc = ctypes.CDLL(None)
        libc.printf(b"C says hello\\n")
        libc.fflush(None)
        subprocess.run(["sh", "-c", "echo the subprocess says hello; echo it warns too >&2"],
                       check=True)
        for i in range(lines):
            print(f"line {i:08d} " + "x" * 90)
        print("THE END", file=sys.stderr)
""")


def script(tmp_path, body: str) -> str:
    path = tmp_path / "task.py"
    path.write_text(NOISY + textwrap.dedent(body))
    return str(path)


def read(uri: str) -> bytes:
    return store_for(uri).read_bytes(uri)


# -- the capture --------------------------------------------------------------------------------

def test_the_log_holds_output_from_python_c_and_subprocesses_and_passes_it_on(tmp_path):
    log = f"file://{tmp_path}/store/attempt-1.log"
    path = script(tmp_path, f"""
        from kubemr.runtime import logs
        capture = logs.capture({log!r})
        noise(3)
        capture.close()
        print("after the capture")
    """)
    result = subprocess.run([sys.executable, path], capture_output=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    stored = read(log).decode()
    for text in ("python says hello", "python warns", "a raw write to fd 1", "C says hello",
                 "the subprocess says hello", "it warns too", "line 00000002", "THE END"):
        assert text in stored, text
    assert "after the capture" not in stored
    # Everything still reaches the process's own stdout and stderr (the pod's log), each its own.
    assert b"C says hello" in result.stdout and b"the subprocess says hello" in result.stdout
    assert b"python warns" in result.stderr and b"it warns too" in result.stderr
    assert b"python warns" not in result.stdout and b"C says hello" not in result.stderr
    assert result.stdout.endswith(b"after the capture\n")


def test_more_than_a_mib_keeps_the_tail_within_the_bound(tmp_path):
    log = f"file://{tmp_path}/store/attempt-1.log"
    lines = 30_000  # 3 MiB
    path = script(tmp_path, f"""
        from kubemr.runtime import logs
        capture = logs.capture({log!r})
        noise({lines})
        capture.close()
    """)
    result = subprocess.run([sys.executable, path], capture_output=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    stored = read(log)
    assert len(stored) <= LOG_LIMIT and len(stored) > LOG_LIMIT - 200
    first, _, rest = stored.partition(b"\n")
    assert first.startswith(b"[kubemr: this attempt wrote ") and b"the last part" in first
    assert rest.startswith(b"line ")  # from a whole line
    assert rest.endswith(b"THE END\n")
    assert f"line {lines - 1:08d}".encode() in rest
    assert b"line 00000000" not in rest and b"python says hello" not in rest
    assert result.stdout.count(b"\nline ") == lines  # the pod's log had all of it


@pytest.mark.parametrize("ending, code", [
    ("os._exit(3)", 3),                           # no chance to upload: the copier does
    ("os.kill(os.getpid(), signal.SIGSEGV)", -signal.SIGSEGV),
    ("raise SystemExit(5)", 5),
])
def test_an_attempt_that_dies_still_leaves_its_log(tmp_path, ending, code):
    log = f"file://{tmp_path}/store/attempt-1.log"
    path = script(tmp_path, f"""
        import signal
        from kubemr.runtime import logs
        capture = logs.capture({log!r})
        noise(2)
        {ending}
    """)
    result = subprocess.run([sys.executable, path], capture_output=True, env=ENV, timeout=300)
    assert result.returncode == code
    deadline = time.time() + 60
    while not os.path.exists(log[len("file://"):]) and time.time() < deadline:
        time.sleep(0.05)
    assert b"THE END" in read(log)


def test_sigterm_stores_the_log_and_still_ends_the_process_by_sigterm(tmp_path):
    log = f"file://{tmp_path}/store/attempt-1.log"
    ready = tmp_path / "ready"
    path = script(tmp_path, f"""
        import time
        from kubemr.runtime import logs
        capture = logs.capture({log!r})
        noise(2)
        open({str(ready)!r}, "w").close()
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, path], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.time() + 120
        while not ready.exists():
            assert time.time() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == -signal.SIGTERM
    finally:
        process.kill()
    assert b"THE END" in read(log)


def test_a_killed_attempt_leaves_what_it_wrote_before_the_last_upload(tmp_path):
    """SIGKILL gives the worker no chance: the periodic upload (every heartbeat) has the log.
    The copier uploads it: the worker keeps one thread (kubemr.engine.progress says why)."""
    log = f"file://{tmp_path}/store/attempt-1.log"
    path = script(tmp_path, f"""
        import os, time
        from kubemr.runtime import logs
        capture = logs.capture({log!r})
        print("worker threads:", len(os.listdir("/proc/self/task")), flush=True)
        noise(2)
        time.sleep(60)
    """)
    env = dict(ENV, KUBEMR_HEARTBEAT_SECONDS="1")
    # Its own session, so the kill reaches the copier too, as a pod's end does.
    process = subprocess.Popen([sys.executable, path], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.time() + 120
        while b"THE END" not in (read(log) if os.path.exists(log[7:]) else b""):
            assert time.time() < deadline, "no upload while the attempt ran"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert b"python says hello" in read(log)
    assert b"worker threads: 1\n" in read(log)



def test_a_store_that_never_answers_holds_the_output_up_only_for_a_while(tmp_path):
    """The copier uploads while it copies: an S3 server that accepts and never answers must
    not stall the worker's output (past a pipe's worth) for the clients' minutes of retries."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections are accepted by the kernel and never answered
    path = script(tmp_path, """
        import sys, time
        from kubemr.runtime import logs
        logs.STORE_SECONDS = 2
        capture = logs.capture("s3://bucket/attempt-1.log")
        for i in range(300):  # 150 KB: more than a pipe holds, while uploads hang
            print("line", i, "x" * 500, flush=True)
            time.sleep(0.01)
        capture.close()
        print("THE END", file=sys.stderr, flush=True)
    """)
    env = dict(ENV, KUBEMR_HEARTBEAT_SECONDS="1", KUBEMR_S3_ACCESS_KEY="k",
               KUBEMR_S3_SECRET_KEY="s",
               KUBEMR_S3_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}")
    try:
        done = subprocess.run([sys.executable, path], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env, timeout=90)
    finally:
        silent.close()
    assert done.returncode == 0
    assert b"took over 2s" in done.stderr and b"THE END" in done.stderr

def test_the_ring_keeps_the_last_bytes_across_wraps():
    ring = _Ring(16)
    assert ring.snapshot() == (0, b"")
    ring.append(b"0123456789")
    assert ring.snapshot() == (10, b"0123456789")
    ring.append(b"abcdefghij")
    assert ring.snapshot() == (20, b"456789abcdefghij")
    ring.append(b"Z" * 40 + b"tail")
    assert ring.snapshot() == (64, b"Z" * 12 + b"tail")


def test_render_is_the_output_whole_or_a_note_and_its_tail_within_the_bound():
    assert render(5, b"hello") == b"hello"
    tail = b"partial line\n" + b"".join(b"line %d\n" % i for i in range(100))
    stored = render(10_000, tail, limit=200)
    assert len(stored) <= 200
    assert stored.startswith(b"[kubemr: this attempt wrote 10000 bytes")
    assert stored.endswith(b"line 99\n") and b"partial" not in stored


# -- the layout and where each runner puts it -------------------------------------------------

def test_the_store_layout():
    logs = job_logs_uri("s3://kubemr-work", "team", "wordcount", "0a1b2c3d4e5f")
    assert logs == "s3://kubemr-work/_logs/team/wordcount-0a1b2c3d"
    assert attempt_log_uri(logs, "map", 3, 2) == logs + "/map-00003/attempt-2.log"
    assert attempt_log_uri(logs, "reduce", 0, 1) == logs + "/reduce-00000/attempt-1.log"
    assert parse_task("map-3") == ("map", 3) and parse_task("reduce-00010") == ("reduce", 10)
    for bad in ("map", "mapper-1", "reduce-x"):
        with pytest.raises(KubemrError, match="map-3, combine-2 or reduce-0"):
            parse_task(bad)
    settings = Settings(work_uri="s3://kubemr-work")
    job = job_object({}, name="wordcount", uid="0a1b2c3d4e5f")
    assert logs_uri(job, settings) == "s3://kubemr-work/_logs/team/wordcount-0a1b2c3d"
    # never inside the work prefix, which goes when the job ends
    assert not logs_uri(job, settings).startswith(work_uri(job, settings))


def test_the_local_runner_keeps_each_attempts_log_when_asked(tmp_path):
    (tmp_path / "in.txt").write_text("a b\n")
    code = NOISY + textwrap.dedent("""
        def mapper(offset, line):
            noise(30_000)
            yield line, 1
        def failing_reducer(key, values):
            print("the reducer was here")
            raise ValueError("no reduce today")
    """)
    job = make_job(tmp_path, code, str(tmp_path / "in.txt"), reducer="failing_reducer",
                   maxAttempts=2, backoffSeconds=0)
    with pytest.raises(JobFailed) as failure:
        run_local(job, logs=str(tmp_path / "logs"))
    (run,) = os.listdir(tmp_path / "logs")
    assert run.startswith("test-")
    assert f"every attempt's log is in file://{tmp_path}/logs/{run}/" in str(failure.value)
    folder = tmp_path / "logs" / run
    assert sorted(os.listdir(folder)) == ["_run.json", "map-00000", "reduce-00000"]
    mapped = (folder / "map-00000" / "attempt-1.log").read_bytes()
    assert len(mapped) <= LOG_LIMIT and mapped.endswith(b"THE END\n")
    assert sorted(os.listdir(folder / "reduce-00000")) == ["attempt-1.log", "attempt-2.log"]
    reduced = (folder / "reduce-00000" / "attempt-2.log").read_text()
    assert "the reducer was here" in reduced and "ValueError: no reduce today" in reduced
    stored = stored_attempts(f"file://{folder}", "reduce", 0)
    assert sorted(stored) == [1, 2]


def test_kubemr_run_local_logs_flag(tmp_path, capsys):
    (tmp_path / "in.txt").write_text("a b\n")
    manifest = tmp_path / "job.yaml"
    manifest.write_text(json.dumps(job_document(
        tmp_path, "def mapper(k, v):\n    print('mapping', v)\n    yield v, 1\n",
        str(tmp_path / "in.txt"), name="flagged")))
    assert cli.main(["run", str(manifest), "--local", "-q", "--logs", str(tmp_path / "logs"),
                     "-o", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    logs = printed["logs"]
    assert logs.startswith(f"file://{tmp_path}/logs/flagged-")
    assert "mapping a b" in read(attempt_log_uri(logs, "map", 0, 1)).decode()


# -- `kubemr logs`: the pod's while it is there, else the stored one --------------------------

@dataclass
class PodAttempt:
    task_type: str
    index: int
    attempt: int
    pod: str


class FakeCluster:
    """The calls Job.logs makes; pods named in `gone` have no log any more."""

    def __init__(self, job: dict, pods: list[PodAttempt], gone=()):
        self.job, self.pods, self.gone = job, pods, set(gone)

    def get_job(self, namespace, name):
        return self.job

    def attempts(self, namespace, name):
        return self.pods

    def logs(self, namespace, pod):
        if pod in self.gone:
            raise KubemrError(f"cannot read logs of {pod}: not found")
        return f"live log of {pod}\n"


def stored_job(tmp_path, attempts: dict[tuple[str, int, int], str]) -> dict:
    logs = f"file://{tmp_path}/work/_logs/team/wc-0a1b2c3d"
    for (kind, index, number), text in attempts.items():
        uri = attempt_log_uri(logs, kind, index, number)
        store_for(uri).write_bytes(uri, text.encode())
    return {"metadata": {"name": "wc", "namespace": "team", "uid": "0a1b2c3d4e5f"},
            "spec": {}, "status": {"logs": logs}}


def test_logs_read_the_stored_log_once_the_pod_is_gone(tmp_path):
    job = stored_job(tmp_path, {("map", 3, 1): "stored one\n", ("map", 3, 2): "stored two\n",
                                ("map", 4, 1): "another task\n"})
    pods = [PodAttempt("map", 3, 1, "wc-map-3-1"), PodAttempt("map", 3, 2, "wc-map-3-2")]
    gone = Job("wc", "team", FakeCluster(job, pods, gone={"wc-map-3-2"}))
    assert gone.logs("map-3") == "stored two\n"
    assert gone.logs("map-3", attempt=1) == "live log of wc-map-3-1\n"  # the pod's, whole
    assert Job("wc", "team", FakeCluster(job, [])).logs("map-3", attempt=1) == "stored one\n"
    assert Job("wc", "team", FakeCluster(job, [])).logs("map-4") == "another task\n"


def test_logs_prefer_the_pod_and_find_an_attempt_only_the_store_knows(tmp_path):
    job = stored_job(tmp_path, {("reduce", 0, 1): "first\n", ("reduce", 0, 2): "second\n"})
    pods = [PodAttempt("reduce", 0, 1, "wc-reduce-0-1")]  # attempt 2's pod was deleted
    on = Job("wc", "team", FakeCluster(job, pods))
    assert on.logs("reduce-0", attempt=1) == "live log of wc-reduce-0-1\n"
    assert on.logs("reduce-0") == "second\n"
    with pytest.raises(KubemrError, match="has no attempt 7: its attempts are 1, 2"):
        on.logs("reduce-0", attempt=7)
    with pytest.raises(KubemrError, match="has no task map-0"):
        on.logs("map-0")


def test_logs_without_the_store_still_read_the_pod(tmp_path, monkeypatch):
    for name in ("KUBEMR_S3_ENDPOINT", "KUBEMR_S3_BUCKET_ENDPOINTS", "KUBEMR_S3_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    job = {"metadata": {"name": "wc", "namespace": "team", "uid": "0a1b2c3d4e5f"},
           "spec": {}, "status": {"logs": "s3://kubemr-work/_logs/team/wc-0a1b2c3d"}}
    pods = [PodAttempt("map", 0, 1, "wc-map-0-1")]
    assert Job("wc", "team", FakeCluster(job, pods)).logs("map-0") == "live log of wc-map-0-1\n"
    with pytest.raises(KubemrError, match="cannot be read: no S3 endpoint"):
        Job("wc", "team", FakeCluster(job, pods, gone={"wc-map-0-1"})).logs("map-0", 2)


# -- the operator: logs outlive the job's end, and go with the job ---------------------------

CODE = """
import json, sys
with open(sys.argv[1]) as f:  # the stand-in's pods get their task document as a file
    ATTEMPT = json.load(f)["attempt"]

def mapper(offset, line):
    print("mapping", offset)
    yield line, 1

def fails_first(offset, line):
    if ATTEMPT == 1:
        raise RuntimeError("attempt one fails")
    yield from mapper(offset, line)

def reducer(key, values):
    yield key, sum(values)
"""


@pytest.fixture
def cluster_job(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    for i in range(2):
        (data / f"f{i}.txt").write_text(f"alpha beta {i}\n" * 80)  # 1040 bytes
    settings = Settings(work_uri=f"file://{tmp_path}/work", heartbeat_seconds=1.0,
                        local_paths=True)
    scratch = tmp_path / "pods"
    scratch.mkdir()
    reconcile_module._caches.clear()

    def make(**spec):
        spec = make_job(tmp_path, CODE, str(data) + "/", reducer="reducer",
                        speculation=False, backoffSeconds=0,
                        input={"splitSize": 1040}, **spec).spec  # one map task per file
        job = job_object(spec)
        return job, StandInCluster(job, scratch, settings), settings

    return make


def test_logs_stay_when_the_job_ends_and_go_when_it_is_deleted(tmp_path, cluster_job):
    job, cluster, settings = cluster_job(mapper="fails_first")
    status = run_to_the_end(job, cluster, settings)
    assert status["phase"] == "Succeeded"
    logs = logs_uri(job, settings)
    assert status["logs"] == logs
    assert not os.path.exists(work_uri(job, settings)[len("file://"):])  # work: gone at the end
    failed = read(attempt_log_uri(logs, "map", 0, 1)).decode()
    assert "RuntimeError: attempt one fails" in failed
    assert "mapping 0" in read(attempt_log_uri(logs, "map", 0, 2)).decode()
    assert sorted(stored_attempts(logs, "reduce", 0)) == [1]
    delete_work(job, settings)  # the job was deleted (by hand or by its TTL)
    assert not os.path.exists(logs[len("file://"):])


def test_the_sweep_deletes_the_logs_of_a_job_that_is_gone_and_only_those(tmp_path, cluster_job):
    live, cluster, settings = cluster_job()
    assert run_to_the_end(live, cluster, settings)["phase"] == "Succeeded"
    gone = job_object(live["spec"], name="gone", uid="dead00000000")
    stray = attempt_log_uri(logs_uri(gone, settings), "map", 0, 1)
    store_for(stray).write_bytes(stray, b"left behind\n")
    assert sweep_orphans(cluster, settings) == ["team/gone-dead0000"]
    assert not store_for(stray).exists(stray)
    assert sorted(stored_attempts(logs_uri(live, settings), "map", 1)) == [1]


@pytest.mark.parametrize("retain, kept", [
    ("Always", {"Failed", "Succeeded"}),
    ("OnFailure", {"Failed"}),
    ("Never", set()),
])
def test_retain_pods_says_which_finished_pods_stay_once_the_job_ends(cluster_job, retain, kept):
    job, cluster, settings = cluster_job(mapper="fails_first", retainPods=retain)
    assert job["spec"]["retainPods"] == retain
    assert run_to_the_end(job, cluster, settings)["phase"] == "Succeeded"
    assert {p["status"]["phase"] for p in cluster.pods.values()} == kept
    if "Failed" in kept:
        assert sorted(name for name, p in cluster.pods.items()
                      if p["status"]["phase"] == "Failed") == \
            ["job-0a1b2-map-0-1", "job-0a1b2-map-1-1"]


def test_retain_pods_defaults_to_always():
    from kubemr.spec.manifest import parse_manifest
    from tests.manifest_cases import manifest

    assert parse_manifest(manifest()).spec["retainPods"] == "Always"


def test_a_forked_copier_makes_its_own_store_connections(monkeypatch):
    """The copier uploads while the worker runs: sharing the worker's S3 connections would
    put two processes' requests on one socket."""
    from kubemr import storage

    monkeypatch.setenv("KUBEMR_S3_ENDPOINT", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("KUBEMR_S3_ACCESS_KEY", "k")
    monkeypatch.setenv("KUBEMR_S3_SECRET_KEY", "s")

    parent = storage.store_for("s3://bucket/key")  # no request: a client, its connection pool
    pid = os.fork()
    if pid == 0:
        os._exit(0 if storage.store_for("s3://bucket/key") is not parent else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert storage.store_for("s3://bucket/key") is parent
