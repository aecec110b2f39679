"""One level-triggered pass over a MapReduceJob: compare what should run with what does.

The cluster (pods) and the store (plan, attempt markers, COMMITs) are the truth; the pass keeps
only caches in memory, so running it twice, or after a restart, does no harm.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubemr.engine import commit
from kubemr.engine import counters as counter_math
from kubemr.engine.plan import plan_splits
from kubemr.errors import KubemrError, StorageError
from kubemr.storage import join, split_uri, store_for
from kubemr_operator import failures
from kubemr_operator.config import Settings
from kubemr_operator.kube import Kube
from kubemr_operator.pods import (
    LABEL_ATTEMPT,
    LABEL_JOB,
    LABEL_TASK_INDEX,
    LABEL_TASK_TYPE,
    build_task_pod,
)
from kubemr_operator.status import conditions, now_iso
from kubemr_operator.tasks import TaskState, counts, decide

log = logging.getLogger("kubemr.operator")
TERMINAL = ("Succeeded", "Failed")
MISSING_MAP_OUTPUT = re.compile(r"no such object: (\S*/map-\d+/attempt-\d+\.out)")
Events = Callable[[dict, str, str, str], None]  # (job, type, reason, message)


@dataclass
class JobCache:
    plan: list[dict] | None = None
    commits: dict[tuple[str, int], dict] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reported_failures: set[tuple[str, int, int]] = field(default_factory=set)


_caches: dict[str, JobCache] = {}


def work_uri(job: dict, settings: Settings) -> str:
    intermediate = (job["spec"].get("intermediate") or {}).get("uri")
    meta = job["metadata"]
    base = intermediate or settings.work_uri
    return join(base, meta.get("namespace", "default"), f"{meta['name']}-{meta['uid'][:8]}")


def _data_node(uri: str, settings: Settings) -> str | None:
    if not uri.startswith("s3://"):
        return None
    bucket = split_uri(uri)[1]
    for server in settings.node_servers:
        if server.get("bucket") == bucket:
            return server["node"]
    return None


def load_plan(spec: dict, work: str, settings: Settings) -> list[dict]:
    """The job's splits with the node holding each, planned once and kept in the store."""
    uri = join(work, "plan.json")
    store = store_for(uri)
    if store.exists(uri):
        return json.loads(store.read_bytes(uri))
    commit.check_output(spec)
    splits = plan_splits(spec["input"]["uris"], spec["input"]["format"],
                         spec["input"]["splitSize"])
    plan = [{"split": s.to_dict(), "node": _data_node(s.uri, settings)} for s in splits]
    store.write_bytes(uri, json.dumps(plan).encode())
    return plan


def _normalized_spec(job: dict) -> dict:
    """The job's spec as the engine reads it: input.uri folded into input.uris."""
    spec = json.loads(json.dumps(job["spec"]))
    inputs = spec["input"]
    if "uris" not in inputs:
        inputs["uris"] = [inputs.pop("uri")]
    inputs.pop("uri", None)
    return spec


class Pass:
    """Everything one reconcile pass needs."""

    def __init__(self, job: dict, kube: Kube, settings: Settings, events: Events):
        self.job = job
        self.kube = kube
        self.settings = settings
        self.events = events
        self.meta = job["metadata"]
        self.namespace = self.meta.get("namespace", "default")
        self.name = self.meta["name"]
        self.spec = _normalized_spec(job)
        self.work = work_uri(job, settings)
        self.store = store_for(self.work)
        self.cache = _caches.setdefault(self.meta["uid"], JobCache())
        self.now = time.time()

    def run(self) -> None:
        status = self.job.get("status") or {}
        if status.get("phase") in TERMINAL:
            self._expire(status)
            return
        try:
            if self.cache.plan is None:
                self.cache.plan = load_plan(self.spec, self.work, self.settings)
                self.events(self.job, "Normal", "Planned",
                            f"{len(self.cache.plan)} map tasks, {self.spec['reducers']} reduce "
                            "tasks")
        except KubemrError as e:
            self._fail(str(e), "InvalidInput", status)
            return
        self._advance(status)

    def _listing(self) -> tuple[dict, set, dict, set]:
        """From one LIST of the work prefix: attempts started, COMMITs, heartbeats, and
        attempts whose committed output was lost."""
        started: dict[tuple[str, int], set[int]] = {}
        committed: set[tuple[str, int]] = set()
        alive: dict[tuple[str, int, int], float] = {}
        lost: set[tuple[str, int, int]] = set()
        prefix = self.work + "/"
        for obj in self.store.list(prefix):
            parts = obj.uri[len(prefix):].split("/")
            if len(parts) != 2 or "-" not in parts[0]:
                continue
            task_type, _, index = parts[0].partition("-")
            key = (task_type, int(index))
            name = parts[1]
            if name == "COMMIT":
                committed.add(key)
            elif name.endswith(".started"):
                started.setdefault(key, set()).add(int(name[len("attempt-"):-len(".started")]))
            elif name.endswith(".alive"):
                attempt = int(name[len("attempt-"):-len(".alive")])
                alive[(*key, attempt)] = obj.modified
            elif name.endswith(".lost"):
                lost.add((*key, int(name[len("attempt-"):-len(".lost")])))
        return started, committed, alive, lost

    def _tasks(self, task_type: str, n: int, started, committed, alive, lost, pods,
               ready_nodes) -> list[TaskState]:
        timeout = float(self.spec.get("taskTimeoutSeconds", 600))
        tasks = []
        for i in range(n):
            task = TaskState(task_type, i, (task_type, i) in committed,
                             started.get((task_type, i), set()))
            pod = pods.get((task_type, i, task.latest))
            if task.latest and not task.committed and (task_type, i, task.latest) in lost:
                task.outcome = failures.Outcome(
                    "lost", failures.NODE_LOST, "its committed output was lost (kept on a node "
                    "that is gone, or unreadable by a reduce task)")
            elif task.latest and not task.committed:
                task.outcome = failures.observe(pod, self.now, timeout,
                                                alive.get((task_type, i, task.latest)),
                                                ready_nodes)
            tasks.append(task)
        return tasks

    def _advance(self, status: dict) -> None:
        self.pods = pods = {}
        # Succeeded pods are left out: their tasks committed before they exited.
        for pod in self.kube.list_pods(self.namespace, f"{LABEL_JOB}={self.name}",
                                       unfinished=True):
            labels = pod["metadata"].get("labels", {})
            pods[(labels[LABEL_TASK_TYPE], int(labels[LABEL_TASK_INDEX]),
                  int(labels[LABEL_ATTEMPT]))] = pod
        started, committed, alive, lost = self._listing()
        ready_nodes = self.kube.ready_nodes()
        num_maps, num_reduces = len(self.cache.plan), self.spec["reducers"]
        maps = self._tasks("map", num_maps, started, committed, alive, lost, pods,
                           ready_nodes)
        reduces = self._tasks("reduce", num_reduces, started, committed, alive, lost, pods,
                              ready_nodes)
        self._read_new_commits(committed)
        if all(t.committed for t in maps) and self._drop_lost_map_outputs(maps, reduces,
                                                                            ready_nodes):
            return
        mapping = not all(t.committed for t in maps)
        active = maps if mapping else reduces
        self._report_failures(active)
        max_attempts = self.spec["maxAttempts"]
        decision = decide(active, max_attempts, self.spec.get("parallelism", 8),
                          float(self.spec.get("backoffSeconds", 5)), self.now)
        if decision.failed:
            task = decision.failed
            outcome = task.outcome
            tail = "\n".join(outcome.message.strip().splitlines()[-10:])
            self._fail(f"{task.task_type} task {task.index} failed on all {max_attempts} "
                       f"attempts ({outcome.failure_class}): {tail}", outcome.failure_class,
                       status, pods)
            return
        for task, attempt, avoid in decision.start:
            self._start(task, attempt, avoid)
        if not mapping and all(t.committed for t in reduces):
            self._succeed(status, maps, reduces, started)
            return
        phase = "Mapping" if mapping else "Reducing"
        if phase != status.get("phase"):
            self.events(self.job, "Normal", phase, f"{phase.lower()} started")
        self._write_status(status, phase, maps, reduces, started)

    def _start(self, task: TaskState, attempt: int, avoid: str | None) -> None:
        document = {"job": {"name": self.name, "namespace": self.namespace, "spec": self.spec},
                    "work": self.work, "type": task.task_type, "index": task.index,
                    "attempt": attempt}
        data_node = None
        if task.task_type == "map":
            entry = self.cache.plan[task.index]
            document["split"] = entry["split"]
            data_node = document["dataNode"] = entry["node"]
        else:
            document["maps"] = len(self.cache.plan)
        pod = build_task_pod(job=self.job, task=document, settings=self.settings,
                             data_node=data_node, avoid_node=avoid)
        pod["metadata"]["ownerReferences"] = [{
            "apiVersion": self.job["apiVersion"], "kind": self.job["kind"], "name": self.name,
            "uid": self.meta["uid"], "controller": True, "blockOwnerDeletion": True}]
        previous = self.pods.get((task.task_type, task.index, attempt - 1))
        if previous and previous.get("status", {}).get("phase") in ("Pending", "Running"):
            self.kube.delete_pod(self.namespace, previous["metadata"]["name"])
        self.store.write_bytes(commit.started_uri(self.work, task.task_type, task.index, attempt),
                               b"")
        self.kube.create_pod(pod)
        if attempt > 1:
            self.events(self.job, "Normal", "TaskRetried",
                        f"{task.task_type} task {task.index}: attempt {attempt} started")

    def _report_failures(self, tasks: list[TaskState]) -> None:
        for task in tasks:
            outcome = task.outcome
            key = (task.task_type, task.index, task.latest)
            if outcome and outcome.state == "failed" and key not in self.cache.reported_failures:
                self.cache.reported_failures.add(key)
                last = (outcome.message.strip().splitlines() or [""])[-1]
                self.events(self.job, "Warning", "TaskFailed",
                            f"{task.task_type} task {task.index} attempt {task.latest} failed "
                            f"({outcome.failure_class}) on {outcome.node or 'no node'}: {last}")

    def _read_new_commits(self, committed: set) -> None:
        for key in committed:
            if key not in self.cache.commits:
                record = commit.read_commit(self.work, *key)
                if record:
                    self.cache.commits[key] = record

    def _drop_lost_map_outputs(self, maps: list[TaskState], reduces: list[TaskState],
                               ready_nodes: set[str]) -> bool:
        """Map outputs kept on a node that is gone, or that a reduce task could not fetch, are
        made again: their COMMITs are removed, so the maps run again."""
        lost = set()
        for task in maps:
            record = self.cache.commits.get(("map", task.index))
            node = record and _data_node(record["data"], self.settings)
            if node and ready_nodes and node not in ready_nodes:
                lost.add(task.index)
        missing = {uri for task in reduces if task.outcome and task.outcome.state == "failed"
                   for uri in MISSING_MAP_OUTPUT.findall(task.outcome.message)}
        for (task_type, index), record in self.cache.commits.items():
            if task_type == "map" and record["data"] in missing:
                lost.add(index)
        lost = sorted(lost)
        for index in lost:
            self.store.write_bytes(commit.lost_uri(self.work, "map", index, maps[index].latest),
                                   b"")
            self.store.delete(commit.commit_uri(self.work, "map", index))
            self.cache.commits.pop(("map", index), None)
        if lost:
            self.events(self.job, "Warning", "MapOutputLost",
                        f"map outputs {lost} were on a lost node; running those maps again")
        return bool(lost)

    def _locality(self) -> dict[str, int]:
        local = remote = 0
        for (task_type, index), record in self.cache.commits.items():
            if task_type != "map" or index >= len(self.cache.plan):
                continue
            data_node = self.cache.plan[index]["node"]
            if data_node and record.get("node") == data_node:
                local += 1
            else:
                remote += 1
        return {"dataLocal": local, "remote": remote}

    def _counters(self) -> dict:
        total: dict = {}
        for record in self.cache.commits.values():
            counter_math.add(total, record.get("counters", {}))
        return total

    def _write_status(self, status: dict, phase: str, maps, reduces, started,
                      extra: dict | None = None) -> None:
        max_attempts = self.spec["maxAttempts"]
        map_counts, reduce_counts = counts(maps, max_attempts), counts(reduces, max_attempts)
        new = {
            "phase": phase,
            "observedGeneration": self.meta.get("generation", 1),
            "maps": map_counts,
            "reduces": reduce_counts,
            "mapsDone": f"{map_counts['succeeded']}/{map_counts['total']}",
            "reducesDone": f"{reduce_counts['succeeded']}/{reduce_counts['total']}",
            "attempts": sum(len(a) for a in started.values()),
            "locality": self._locality(),
            "counters": self._counters(),
            "startTime": status.get("startTime") or now_iso(),
            **(extra or {}),
        }
        new["conditions"] = conditions(status.get("conditions") or [], phase,
                                       new.get("message", ""), new["observedGeneration"])
        if any(status.get(k) != v for k, v in new.items()):
            self.kube.patch_status(self.namespace, self.name, new)

    def _succeed(self, status: dict, maps, reduces, started) -> None:
        counters = self._counters()
        output = commit.commit_job(self.name, self.spec, self.work, counters)
        self._cleanup()
        locality = self._locality()
        self._write_status(status, "Succeeded", maps, reduces, started, {
            "completionTime": now_iso(),
            "message": f"output committed to {output}",
        })
        self.events(self.job, "Normal", "Succeeded",
                    f"output committed to {output}; {locality['dataLocal']} of "
                    f"{len(maps)} map tasks ran on their data's node")
        _caches.pop(self.meta["uid"], None)

    def _fail(self, message: str, failure_class: str, status: dict,
              pods: dict | None = None) -> None:
        for (_, _, _), pod in (pods or {}).items():
            if pod.get("status", {}).get("phase") in ("Pending", "Running"):
                self.kube.delete_pod(self.namespace, pod["metadata"]["name"])
        self._cleanup()
        plan = self.cache.plan or []
        maps = [TaskState("map", i) for i in range(len(plan))]
        new = {"phase": "Failed", "message": message[-4000:], "failureClass": failure_class,
               "completionTime": now_iso(), "startTime": status.get("startTime") or now_iso(),
               "counters": self._counters(), "observedGeneration": self.meta.get("generation", 1)}
        if plan:
            new["mapsDone"] = f"{len([k for k in self.cache.commits if k[0] == 'map'])}/{len(maps)}"
        new["conditions"] = conditions(status.get("conditions") or [], "Failed", message,
                                       new["observedGeneration"], reason=failure_class)
        self.kube.patch_status(self.namespace, self.name, new)
        self.events(self.job, "Warning", "Failed", message[-1000:])
        _caches.pop(self.meta["uid"], None)

    def _cleanup(self) -> None:
        if not (self.spec.get("intermediate") or {}).get("keep"):
            try:
                delete_work(self.job, self.settings)
            except StorageError as e:
                log.warning("cannot delete intermediate data of %s: %s", self.name, e)

    def _expire(self, status: dict) -> None:
        ttl = self.spec.get("ttlSecondsAfterFinished")
        finished = status.get("completionTime")
        if ttl is None or not finished:
            return
        from kubemr_operator.status import parse_iso

        if self.now - parse_iso(finished) >= ttl:
            self.kube.delete_job(self.namespace, self.name)


def delete_work(job: dict, settings: Settings) -> None:
    """Delete a job's intermediate data: plan, attempt markers, map outputs, uncommitted parts."""
    work = work_uri(job, settings)
    store = store_for(work)
    for record_uri in [o.uri for o in store.list(work + "/") if o.uri.endswith("/COMMIT")]:
        try:
            data = json.loads(store.read_bytes(record_uri)).get("data", "")
        except (StorageError, ValueError):
            continue
        if data and not data.startswith(work + "/"):
            store_for(data).delete(data)
    store.delete_prefix(work + "/")


def reconcile(job: dict, kube: Kube, settings: Settings, events: Events) -> None:
    cache = _caches.setdefault(job["metadata"]["uid"], JobCache())
    if not cache.lock.acquire(blocking=False):
        return  # a pass for this job is under way; it will see the same world
    try:
        Pass(job, kube, settings, events).run()
    finally:
        cache.lock.release()
