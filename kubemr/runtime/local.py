"""The local runner: a whole job on this machine, its task attempts in worker processes.

It runs the same task code as the pods (`python -m kubemr.runtime.worker`), serializes every
intermediate record, uses the real partitioner and combiner, and is driven by the same scheduler
as the operator (kubemr.scheduling): parallelism, backoff, progress timeouts, maxAttempts,
activeDeadlineSeconds and the failure classes behave as they do on the cluster. Of the job's pod
template (kubemr.spec.template) it takes what a process has: env variables with a plain value,
and limits.memory, per task type.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from kubemr.engine import commit
from kubemr.engine.plan import plan_splits
from kubemr.engine.usercode import load_functions, load_pickled
from kubemr.errors import JobFailed
from kubemr.runtime.document import task_document
from kubemr.runtime.logs import attempt_log_uri
from kubemr.runtime.runs import RunRecorder
from kubemr.scheduling import Attempt, Policy, Task, decide, failure_of_report, new_tasks
from kubemr.scheduling.failures import KILLED, MAP_OUTPUT_LOST, USER_ERROR
from kubemr.scheduling.state import FAILED, RUNNING, SUCCEEDED
from kubemr.scheduling.tree import ReduceTree
from kubemr.spec.manifest import JobSpec
from kubemr.spec.template import TASK_TYPES, TEMPLATE_OF, plain_env, task_template
from kubemr.storage import join, normalize_uri, store_for

WAIT_SECONDS = 0.2  # the longest between two passes when no attempt ends


@dataclass
class JobResult:
    name: str
    output: str
    counters: dict
    maps: int
    reduces: int
    attempts: list[Attempt] = field(default_factory=list)  # each one that ended, in order
    logs: str | None = None  # where each attempt's log is kept, if asked for


def parse_quantity(value: str | int) -> int:
    """Kubernetes quantities as bytes: 512Mi, 2G, 1000."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
             "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


def exit_failure(returncode: int) -> tuple[str, str]:
    """The failure class and message of a worker process that ended without a report."""
    if returncode < 0:
        name = signal.Signals(-returncode).name
        if name == "SIGKILL":
            return KILLED, "the task was killed (SIGKILL)"
        return USER_ERROR, f"the task was killed by {name}"
    return USER_ERROR, f"the task exited with code {returncode} without reporting a result"


@dataclass
class _Worker:
    """A worker process that runs this job's attempts of one setup one after another
    (`python -m kubemr.runtime.worker --serve`): asked on its stdin, answering on `replies`."""

    popen: subprocess.Popen
    replies: int  # the read end of the pipe it answers on; at end of file it has ended
    setup: TaskProcess
    log: str  # what it writes outside its attempts (each attempt has a log of its own)
    attempt: tuple[str, int, int] | None = None  # (kind, index, number) it runs, if any
    paths: dict[str, str] = field(default_factory=dict)  # that attempt's files

    def ended(self) -> bool:
        return self.popen.poll() is not None


@dataclass(frozen=True)
class TaskProcess:
    """What one task type's worker processes take from the job's pod template: the memory limit
    (limits.memory, as an address-space cap) and the variables that have a plain value."""

    memory_limit: int | None = None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: dict, kind: str) -> TaskProcess:
        template = task_template(spec, kind)
        limits = (template.get("resources") or {}).get("limits") or {}
        memory = parse_quantity(limits["memory"]) if "memory" in limits else None
        return cls(memory, plain_env(template))


class LocalExecutor:
    """Runs the scheduler's attempts in worker processes; observes them into its tasks.

    A worker runs one attempt after another of this job (and of one task setup: memory limit
    and environment), so that many small tasks do not each pay a process start; a worker
    whose attempt is stopped or that ends (a crash, SIGKILL, running out of memory) is not
    used again, and the next attempt gets a fresh one. No worker outlives its job.
    """

    def __init__(self, scratch: str, heartbeat: float, by_kind: dict[str, TaskProcess]):
        self.scratch = scratch
        self.by_kind = by_kind
        self.workers: list[_Worker] = []
        self.processes: dict[tuple[str, int, int], _Worker] = {}  # the busy ones
        self.started = 0  # worker processes started
        self.records: dict[tuple[str, int, int], dict] = {}  # each committed attempt's record
        self._env = {kind: self._environment(setup.env, scratch, heartbeat)
                     for kind, setup in by_kind.items()}

    @staticmethod
    def _environment(template: dict[str, str], scratch: str, heartbeat: float) -> dict:
        """This environment, the template's variables over it, and kubemr's over those (a
        template's PYTHONPATH comes first in kubemr's)."""
        path = [template.get("PYTHONPATH", ""), *sys.path]
        return {**os.environ, **template, "KUBEMR_SCRATCH": scratch,
                "KUBEMR_HEARTBEAT_SECONDS": str(heartbeat),
                "PYTHONPATH": os.pathsep.join(p for p in path if p)}

    @staticmethod
    def _limit_memory(limit: int) -> Callable[[], None]:
        def limit_memory() -> None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        return limit_memory

    def _start_worker(self, kind: str) -> _Worker:
        setup = self.by_kind[kind]
        replies, answer = os.pipe()
        self.started += 1
        log_path = os.path.join(self.scratch, f"worker-{self.started}.log")
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", "kubemr.runtime.worker", "--serve", str(answer)],
                env=self._env[kind], stdin=subprocess.PIPE, stdout=log,
                stderr=subprocess.STDOUT, pass_fds=(answer,), text=True,
                preexec_fn=self._limit_memory(setup.memory_limit) if setup.memory_limit
                else None,
            )
        os.close(answer)
        worker = _Worker(popen, replies, setup, log_path)
        self.workers.append(worker)
        return worker

    def _worker_for(self, kind: str) -> _Worker:
        """An idle worker of this task type's setup, else a new one (an idle worker of another
        setup ends, so that the workers never outnumber the attempts that may run at once)."""
        setup = self.by_kind[kind]
        for worker in [w for w in self.workers if w.attempt is None and w.ended()]:
            self._retire(worker)
        idle = [w for w in self.workers if w.attempt is None]
        for worker in idle:
            if worker.setup == setup:
                return worker
        if idle:
            self._retire(idle[0])
        return self._start_worker(kind)

    def launch(self, task: Task, document: dict, now: float) -> None:
        name = f"{task.kind}-{task.index:05d}-{document['attempt']}"
        paths = {ext: os.path.join(self.scratch, f"{name}.{ext}")
                 for ext in ("json", "result", "log", "alive")}
        with open(paths["json"], "w") as f:
            json.dump(document, f)
        key = (task.kind, task.index, document["attempt"])
        worker = self._worker_for(task.kind)
        worker.attempt, worker.paths = key, paths
        self.processes[key] = worker
        try:
            worker.popen.stdin.write(json.dumps(
                {"task": paths["json"], "result": paths["result"], "log": paths["log"],
                 "progress": "file://" + paths["alive"]}) + "\n")
            worker.popen.stdin.flush()
        except OSError:  # it has just ended: observe() reports the attempt as failed
            pass
        attempt = task.attempt(document["attempt"])
        attempt.state, attempt.launched, attempt.node = RUNNING, now, "local"

    def stop(self, task: Task, number: int) -> None:
        worker = self.processes.pop((task.kind, task.index, number), None)
        if worker:
            worker.popen.kill()
            self._retire(worker)

    def wait(self, seconds: float) -> None:
        """Return when a running attempt ends or its worker does, or after `seconds`."""
        busy = [w.replies for w in self.processes.values()]
        if busy:
            select.select(busy, [], [], seconds)
        else:
            time.sleep(seconds)

    def observe(self, tasks: list[Task], now: float) -> list[tuple[Task, int]]:
        """Update the tasks from their workers; return the attempts that just ended."""
        ended = []
        by_key = {(t.kind, t.index): t for t in tasks}
        answered = set(select.select([w.replies for w in self.processes.values()], [], [],
                                     0)[0]) if self.processes else set()
        for key, worker in list(self.processes.items()):
            task = by_key[key[:2]]
            attempt = task.attempt(key[2])
            answer = os.read(worker.replies, 64) if worker.replies in answered else None
            if answer is None:
                try:
                    attempt.progress = os.path.getmtime(worker.paths["alive"])
                except OSError:
                    pass
                continue
            del self.processes[key]
            worker.attempt = None
            attempt.finished = now
            report = _read_json(worker.paths["result"]) if answer else None
            if report and report.get("ok"):
                attempt.state = SUCCEEDED
                task.committed, task.committed_attempt = True, attempt.number
                self.records[key] = report.get("commit")
            elif report:
                failure, message, lost = failure_of_report(report)
                attempt.fail(failure, message, now)
                attempt.lost_maps = tuple(tuple(x) for x in lost)
            else:  # the worker ended without answering
                failure, message = exit_failure(worker.popen.wait())
                tail = _tail(worker.paths["log"]) or _tail(worker.log)
                attempt.fail(failure, message + (f"\n{tail}" if tail else ""), now)
            if answer != b"ready\n":
                self._retire(worker)
            ended.append((task, key[2]))
        return ended

    def start_workers(self, kind: str, count: int) -> None:
        """Start `count` workers for this task type ahead of its attempts, so that the second
        one is ready when the first attempts end (a job of one map task and two reduces)."""
        for _ in range(count):
            self._start_worker(kind)

    def _retire(self, worker: _Worker) -> None:
        """End the worker and forget it. It holds nothing between attempts, so it is killed
        rather than waited for to shut down."""
        worker.popen.kill()
        worker.popen.wait()
        try:
            worker.popen.stdin.close()
        except OSError:
            pass
        os.close(worker.replies)
        self.workers.remove(worker)

    def stop_all(self) -> None:
        for worker in list(self.workers):
            self._retire(worker)
        self.processes.clear()


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:  # the worker ended before it opened the attempt's log
        return ""


def run_local(job: JobSpec, workers: int | None = None, overwrite: bool = False,
              progress: Callable[[str], None] | None = None,
              logs: str | None = None) -> JobResult:
    """Run the whole job on this machine; return its counters once the output is committed.

    At most min(workers, spec.parallelism) attempts run at once; workers defaults to the
    number of CPUs (at least 2). With `logs` (a directory or URI), each attempt stores the
    tail of its output there as on the cluster: {logs}/{name}-{run}/map-00003/attempt-1.log,
    and a record of the run beside them for `kubemr ui --local` (kubemr.runtime.runs).
    """
    spec = json.loads(json.dumps(job.spec))
    if overwrite:
        spec["output"]["overwrite"] = True
    pickle_uri = (spec.get("code") or {}).get("pickle")
    load_functions(spec, load_pickled(pickle_uri) if pickle_uri else None)
    commit.check_output(spec)
    progress = progress or (lambda message: None)
    workers = workers or max(2, os.cpu_count() or 1)
    policy = Policy.from_spec(spec)
    policy = Policy(**{**policy.__dict__, "parallelism": min(policy.parallelism, workers)})
    splits = plan_splits(spec["input"]["uris"], spec["input"]["format"],
                         spec["input"]["splitSize"], parallelism=policy.parallelism)
    scratch = tempfile.mkdtemp(prefix="kubemr-local-")
    intermediate = (spec.get("intermediate") or {}).get("uri")
    work_base = normalize_uri(intermediate) if intermediate else "file://" + scratch
    run = f"{job.name}-{uuid.uuid4().hex[:8]}"
    work = join(work_base, run)
    logs = join(normalize_uri(logs), run) if logs else None
    executor = LocalExecutor(scratch, heartbeat=max(0.05, min(5.0, policy.task_timeout / 4)),
                             by_kind={kind: TaskProcess.from_spec(spec, kind)
                                      for kind in (*TASK_TYPES, *TEMPLATE_OF)})
    tree = ReduceTree.of(spec, len(splits))
    tree.check_size()
    tasks = new_tasks(len(splits), spec["reducers"], tree.fan_in)
    finished: list[Attempt] = []
    run_id = uuid.uuid4().hex  # this run's claim on the output (commit.claim_output)
    recorder = RunRecorder(logs, job.name, job.namespace, spec, tasks, executor.records) \
        if logs else None

    def document(task: Task, number: int) -> dict:
        return task_document(
            name=job.name, namespace=job.namespace, spec=spec, work=work, kind=task.kind,
            index=task.index, attempt=number,
            split=splits[task.index].to_dict() if task.kind == "map" else None,
            maps=len(splits),
            log=attempt_log_uri(logs, task.kind, task.index, number) if logs else None)

    try:
        commit.claim_output(spec, commit.holder(job.name, job.namespace, run_id, "local"))
        executor.start_workers("map", min(policy.parallelism, len(tasks)))
        combines = f"{tree.combines} combine tasks in {tree.levels} levels, " \
            if tree.levels else ""
        progress(f"job {job.name}: {len(splits)} map tasks, {combines}{spec['reducers']} reduce "
                 f"tasks, {policy.parallelism} at once"
                 + (f"; attempt logs in {logs}/" if logs else ""))
        try:
            _schedule(tasks, policy, executor, document, progress, finished, work, recorder)
        except JobFailed as e:
            if recorder:
                recorder.save("Failed", str(e), force=True)
            if logs:
                raise JobFailed(f"{e}\n(every attempt's log is in {logs}/)") from None
            raise
        counters = commit.sum_counters(work, len(splits), spec["reducers"], tree.combines)
        output = commit.commit_job(job.name, spec, work, counters, job_uid=run_id)
        if recorder:
            recorder.save("Succeeded", counters=counters, force=True)
    finally:
        executor.stop_all()
        try:
            commit.release_output(spec, lambda claim: claim.get("uid") == run_id)
        finally:
            if not (spec.get("intermediate") or {}).get("keep"):
                store_for(work).delete_prefix(work + "/")
            shutil.rmtree(scratch, ignore_errors=True)
    progress(f"job {job.name} succeeded: output in {output}")
    return JobResult(job.name, output, counters, len(splits), spec["reducers"], finished, logs)


def _schedule(tasks: list[Task], policy: Policy, executor: LocalExecutor,
              document: Callable[[Task, int], dict], progress: Callable[[str], None],
              finished: list[Attempt], work: str, recorder: RunRecorder | None = None) -> None:
    """Observe, decide, act, until the scheduler says the job succeeded or failed."""
    started = time.time()
    while True:
        now = time.time()
        for task, number in executor.observe(tasks, now):
            _report(task, task.attempt(number), finished, progress, recorder)
        decision = decide(tasks, policy, now, started)
        for stop in decision.stop:
            executor.stop(stop.task, stop.attempt.number)
            if stop.attempt.state == FAILED:
                _report(stop.task, stop.attempt, finished, progress, recorder)
        for task in decision.lost_maps:
            store_for(work).delete(commit.commit_uri(work, task.kind, task.index))
            lost = next(a for a in reversed(task.attempts) if a.failure == MAP_OUTPUT_LOST)
            _report(task, lost, finished, progress, recorder)
        if decision.phase == "Failed":
            raise JobFailed(decision.message)
        if decision.phase == "Succeeded":
            return
        for launch in decision.launch:
            executor.launch(launch.task, document(launch.task, launch.number), now)
        if recorder:
            recorder.save()
        executor.wait(WAIT_SECONDS)


def _report(task: Task, attempt: Attempt, finished: list[Attempt],
            progress: Callable[[str], None], recorder: RunRecorder | None = None) -> None:
    finished.append(replace(attempt))  # as it ended: a committed map output may be lost later
    if attempt.ok:
        message = f"{task.label} committed (attempt {attempt.number})"
    else:
        last = (attempt.message.strip().splitlines() or [""])[-1]
        message = f"{task.label} attempt {attempt.number} failed ({attempt.failure}): {last}"
    progress(message)
    if recorder:
        recorder.event(message, warning=not attempt.ok)
