"""The local runner: a whole job on this machine, each task attempt in its own worker process.

It runs the same task code as the pods (`python -m kubemr.runtime.worker`), serializes every
intermediate record, uses the real partitioner and combiner, and retries a failed attempt up to
maxAttempts, so that user code that works here works on the cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from kubemr.engine import commit
from kubemr.engine.plan import plan_splits
from kubemr.engine.usercode import load_functions, load_pickled
from kubemr.errors import JobFailed
from kubemr.spec.manifest import JobSpec
from kubemr.storage import join, normalize_uri, store_for

POLL_SECONDS = 0.01


@dataclass
class Attempt:
    task_type: str
    index: int
    attempt: int
    ok: bool = False
    error: str = ""
    seconds: float = 0.0


@dataclass
class JobResult:
    name: str
    output: str
    counters: dict
    maps: int
    reduces: int
    attempts: list[Attempt] = field(default_factory=list)


def parse_quantity(value: str | int) -> int:
    """Kubernetes quantities as bytes: 512Mi, 2G, 1000."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
             "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"worker process was killed by {name}{hint}"
    return f"worker process exited with code {returncode} without reporting a result"


class _WorkerPool:
    """Runs task attempts as worker processes, at most `workers` at once."""

    def __init__(self, workers: int, max_attempts: int, scratch: str, memory_limit: int | None,
                 progress: Callable[[str], None]):
        self.workers = workers
        self.max_attempts = max_attempts
        self.scratch = scratch
        self.memory_limit = memory_limit
        self.progress = progress
        self.attempts: list[Attempt] = []
        self._env = dict(os.environ, KUBEMR_SCRATCH=scratch,
                         PYTHONPATH=os.pathsep.join(p for p in sys.path if p))

    def _limit_memory(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (self.memory_limit, self.memory_limit))

    def _start(self, task: dict) -> tuple[subprocess.Popen, str, str]:
        name = f"{task['type']}-{task['index']:05d}-{task['attempt']}"
        task_file = os.path.join(self.scratch, name + ".json")
        result_file = os.path.join(self.scratch, name + ".result")
        log_file = os.path.join(self.scratch, name + ".log")
        with open(task_file, "w") as f:
            json.dump(task, f)
        with open(log_file, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "kubemr.runtime.worker", task_file, "--result", result_file],
                env=self._env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=self._limit_memory if self.memory_limit else None,
            )
        return process, result_file, log_file

    def _outcome(self, process: subprocess.Popen, result_file: str, log_file: str) -> dict:
        try:
            with open(result_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            with open(log_file, errors="replace") as f:
                tail = "".join(f.readlines()[-5:]).strip()
            reason = _exit_reason(process.returncode)
            return {"ok": False, "error": reason + (f"\n{tail}" if tail else "")}

    def run(self, tasks: list[dict]) -> None:
        pending = deque(tasks)
        running: dict[subprocess.Popen, tuple[dict, str, str, float]] = {}
        try:
            while pending or running:
                while pending and len(running) < self.workers:
                    task = pending.popleft()
                    process, result_file, log_file = self._start(task)
                    running[process] = (task, result_file, log_file, time.time())
                finished = [p for p in running if p.poll() is not None]
                if not finished:
                    time.sleep(POLL_SECONDS)
                for process in finished:
                    task, result_file, log_file, started = running.pop(process)
                    outcome = self._outcome(process, result_file, log_file)
                    attempt = Attempt(task["type"], task["index"], task["attempt"],
                                      ok=outcome["ok"], error=outcome.get("error", ""),
                                      seconds=round(time.time() - started, 3))
                    self.attempts.append(attempt)
                    label = f"{task['type']} task {task['index']}"
                    if attempt.ok:
                        self.progress(f"{label} committed (attempt {task['attempt']})")
                    elif task["attempt"] < self.max_attempts:
                        last_line = attempt.error.strip().splitlines()[-1:] or [""]
                        self.progress(f"{label} attempt {task['attempt']} failed: {last_line[0]}"
                                      "; retrying")
                        pending.append(dict(task, attempt=task["attempt"] + 1))
                    else:
                        raise JobFailed(
                            f"{label} failed on all {self.max_attempts} attempts; the last "
                            f"error:\n{attempt.error}"
                        )
        finally:
            for process in running:
                process.kill()
                process.wait()


def run_local(job: JobSpec, workers: int | None = None, overwrite: bool = False,
              progress: Callable[[str], None] | None = None) -> JobResult:
    """Run the whole job on this machine; return its counters once the output is committed."""
    spec = json.loads(json.dumps(job.spec))
    if overwrite:
        spec["output"]["overwrite"] = True
    pickle_uri = (spec.get("code") or {}).get("pickle")
    load_functions(spec, load_pickled(pickle_uri) if pickle_uri else None)
    commit.check_output(spec)
    splits = plan_splits(spec["input"]["uris"], spec["input"]["format"],
                         spec["input"]["splitSize"])
    progress = progress or (lambda message: None)
    workers = workers or max(2, os.cpu_count() or 1)
    scratch = tempfile.mkdtemp(prefix="kubemr-local-")
    intermediate = (spec.get("intermediate") or {}).get("uri")
    work_base = normalize_uri(intermediate) if intermediate else "file://" + scratch
    work = join(work_base, f"{job.name}-{uuid.uuid4().hex[:8]}")
    limits = (spec.get("resources") or {}).get("limits") or {}
    memory_limit = parse_quantity(limits["memory"]) if "memory" in limits else None
    pool = _WorkerPool(workers, spec["maxAttempts"], scratch, memory_limit, progress)
    job_doc = {"name": job.name, "namespace": job.namespace, "spec": spec}
    try:
        progress(f"job {job.name}: {len(splits)} map tasks, {spec['reducers']} reduce tasks, "
                 f"{workers} workers")
        pool.run([{"job": job_doc, "work": work, "type": "map", "index": i, "attempt": 1,
                   "split": s.to_dict()} for i, s in enumerate(splits)])
        pool.run([{"job": job_doc, "work": work, "type": "reduce", "index": r, "attempt": 1,
                   "maps": len(splits)} for r in range(spec["reducers"])])
        counters = commit.sum_counters(work, len(splits), spec["reducers"])
        output = commit.commit_job(job.name, spec, work, counters)
    finally:
        if not (spec.get("intermediate") or {}).get("keep"):
            store_for(work).delete_prefix(work + "/")
        shutil.rmtree(scratch, ignore_errors=True)
    progress(f"job {job.name} succeeded: output in {output}")
    return JobResult(job.name, output, counters, len(splits), spec["reducers"], pool.attempts)
