"""What the local runner keeps of a run beside its attempt logs, for `kubemr ui --local DIR`.

    DIR/{name}-{run}/_run.json      (kubemr run JOB.yaml --local --logs DIR)
    DIR/{name}-{run}/map-00003/attempt-1.log

The record has a cluster job's shape (metadata, the spec's input and output, a status with
phase, task counts, counters and times) and adds the run's attempts and events (what the runner
printed). The runner rewrites it while the run goes, at most every RECORD_SECONDS, and when it
ends; each write replaces the object whole, so a reader sees one version or the next.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from kubemr.errors import NotFound
from kubemr.runtime.logs import attempt_log_uri, parse_task
from kubemr.scheduling import Attempt, Task
from kubemr.scheduling.state import FAILED, RUNNING, SUCCEEDED
from kubemr.storage import join, normalize_uri, store_for

RECORD = "_run.json"
RECORD_SECONDS = 1.0
PHASES = {RUNNING: "Running", SUCCEEDED: "Succeeded", FAILED: "Failed"}


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RunRecorder:
    """Keeps {logs}/_run.json current: `tasks` and `records` are the runner's own, read at each
    save (records: (kind, index, attempt) -> the attempt's commit record)."""

    def __init__(self, logs: str, name: str, namespace: str, spec: dict, tasks: list[Task],
                 records: dict):
        self.uri = join(logs, RECORD)
        self.run = logs.rstrip("/").rsplit("/", 1)[-1]
        self.name, self.namespace, self.spec = name, namespace, spec
        self.tasks, self.records = tasks, records
        self.started = time.time()
        self.events: list[dict] = []
        self.saved = 0.0

    def event(self, message: str, warning: bool = False) -> None:
        self.events.append({"time": _iso(time.time()), "type": "Warning" if warning else "Normal",
                            "reason": "AttemptFailed" if warning else "Progress",
                            "message": message, "count": 1})
        self.save()

    def save(self, phase: str | None = None, message: str = "", counters: dict | None = None,
             force: bool = False) -> None:
        if not force and time.time() - self.saved < RECORD_SECONDS:
            return
        self.saved = time.time()
        store_for(self.uri).write_bytes(self.uri, json.dumps(
            self._record(phase, message, counters)).encode())

    def _record(self, phase: str | None, message: str, counters: dict | None) -> dict:
        status: dict = {"startTime": _iso(self.started), "counters": counters or {}}
        for kind in ("map", "reduce"):
            mine = [t for t in self.tasks if t.kind == kind]
            done = sum(t.committed for t in mine)
            status[f"{kind}s"] = {"total": len(mine), "succeeded": done}
            status[f"{kind}sDone"] = f"{done}/{len(mine)}"
        if phase is None:
            maps = status["maps"]
            phase = "Reducing" if maps["succeeded"] == maps["total"] else "Mapping"
        else:
            status["completionTime"] = _iso(time.time())
        attempts = [self._attempt(t, a) for t in self.tasks for a in t.attempts
                    if a.launched is not None]
        status.update(phase=phase, attempts=len(attempts), **({"message": message}
                                                               if message else {}))
        return {"metadata": {"namespace": self.namespace, "name": self.run, "job": self.name},
                "spec": {"input": self.spec["input"], "output": {
                    "uri": self.spec["output"]["uri"]}},
                "status": status, "attempts": attempts, "events": self.events}

    def _attempt(self, task: Task, attempt: Attempt) -> dict:
        """An attempt with the fields of kubemr.client.cluster.TaskAttempt."""
        return {"task_type": task.kind, "index": task.index, "attempt": attempt.number,
                "pod": "", "phase": PHASES.get(attempt.state, "Pending"),
                "node": attempt.node or "", "started": attempt.launched,
                "finished": attempt.finished,
                "record": self.records.get((task.kind, task.index, attempt.number)),
                "error": attempt.message if attempt.state == FAILED else ""}


def read_runs(base: str) -> list[dict]:
    """The record of every run kept under `base` (the --logs DIR of `kubemr run --local`)."""
    base = normalize_uri(base).rstrip("/") + "/"
    store = store_for(base)
    runs = []
    for obj in store.list(base):
        relative = obj.uri[len(base):]
        if relative.count("/") == 1 and relative.endswith("/" + RECORD):
            runs.append(json.loads(store.read_bytes(obj.uri)))
    return runs


def _inside(run: str) -> bool:
    """A run's name names a folder right under the base: no path out of it."""
    return "/" not in run and not run.startswith(".")


def read_run(base: str, run: str) -> dict:
    uri = join(normalize_uri(base), run, RECORD)
    if not _inside(run) or not store_for(uri).exists(uri):
        raise NotFound(f"no local run {run} under {base}")
    return json.loads(store_for(uri).read_bytes(uri))


def read_attempt_log(base: str, run: str, task: str, attempt: int) -> str:
    kind, index = parse_task(task)
    uri = attempt_log_uri(join(normalize_uri(base), run), kind, index, attempt)
    if not _inside(run) or not store_for(uri).exists(uri):
        raise NotFound(f"{task} of run {run} has no log of attempt {attempt}")
    return store_for(uri).read_bytes(uri).decode("utf-8", errors="replace")
