"""One level-triggered pass over a MapReduceJob: observe, derive the phase, run that phase's steps.

The cluster (pods) and the store (plan, attempt markers, COMMITs) are the truth: the phase is
derived from them each pass, and the pass keeps only caches in memory, so running it twice, or
after a restart, does no harm. What to launch, stop, retry or fail is decided by
kubemr.scheduling, the same scheduler the local runner follows; this module is its executor for
pods.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from kubernetes.client.rest import ApiException

import kubemr_operator.metrics as metrics
from kubemr.engine import commit
from kubemr.engine import counters as counter_math
from kubemr.engine.plan import Split, plan_splits, split_document
from kubemr.errors import (
    KubemrError,
    ManifestError,
    OutputInUse,
    StorageError,
    StorageUnavailable,
    UntrustedCommit,
)
from kubemr.runtime.document import task_document
from kubemr.runtime.logs import LOGS_DIR, attempt_log_uri, job_logs_uri
from kubemr.scheduling import Decision, Launch, Policy, Task, counts, decide, new_tasks
from kubemr.scheduling.failures import LAUNCH_FAILED, MAP_OUTPUT_LOST, STORAGE_ERROR
from kubemr.scheduling.state import FAILED, SUCCEEDED
from kubemr.scheduling.tree import ReduceTree
from kubemr.spec.names import LABEL_ATTEMPT, LABEL_JOB_UID, LABEL_TASK_INDEX, LABEL_TASK_TYPE
from kubemr.spec.template import TASK_TYPES, TEMPLATE_FIELDS, check_template
from kubemr.storage import Credentials, join, store_for, using
from kubemr.storage.nodes import node_copies, node_of, within
from kubemr_operator.config import Settings
from kubemr_operator.kube import Kube
from kubemr_operator.observe import observe_pod
from kubemr_operator.pods import build_task_pod
from kubemr_operator.status import conditions, now_iso, parse_iso

log = logging.getLogger("kubemr.operator")
TERMINAL = ("Succeeded", "Failed")
# Fields that may change while a job runs; every other field is read from the spec the job
# was planned with (the CRD refuses changes to them too).
MUTABLE = ("parallelism", "ttlSecondsAfterFinished", "activeDeadlineSeconds", "speculation",
           "suspend", "retainPods")
INVALID_INPUT = "InvalidInput"
Events = Callable[[dict, str, str, str], None]  # (job, type, reason, message)


class StalePass(Exception):
    """The job changed while a pass ran: the pass wrote nothing; the next one reads it anew."""


class AlreadySucceeded(Exception):
    """The job's own _SUCCESS is at its output: it succeeded, whatever its status says."""


class PlanningFailed(Exception):
    """The job's input or output cannot be used: the message names the problem."""


@dataclass
class Plan:
    """The job's splits, the node holding each, and the spec they were planned from."""

    spec: dict
    splits: list[dict]


@dataclass
class JobCache:
    plan: Plan | None = None
    commits: dict[tuple[str, int], dict] = field(default_factory=dict)  # without run indexes
    failures: dict[tuple[str, int, int], dict] = field(default_factory=dict)
    credentials: Credentials | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Asked for since the last pass began: a pod ended, the job changed, the clock ticked.
    pass_wanted: bool = False


_caches: dict[str, JobCache] = {}
_claims = threading.Lock()  # output locks are claimed and released one at a time


@dataclass
class World:
    """What one pass observed."""

    tasks: list[Task]
    pods: dict[tuple[str, int, int], dict]
    attempts_started: int
    marked: set[tuple[str, int, int]]


def work_uri(job: dict, settings: Settings) -> str:
    intermediate = (job["spec"].get("intermediate") or {}).get("uri")
    meta = job["metadata"]
    base = intermediate or settings.work_uri
    return join(base, meta.get("namespace", "default"), f"{meta['name']}-{meta['uid'][:8]}")


def logs_uri(job: dict, settings: Settings) -> str:
    """Where the job's attempt logs are kept (kubemr.runtime.logs): beside, not in, its work
    prefix, so they outlive the job's end and go with the job."""
    meta = job["metadata"]
    return job_logs_uri(settings.work_uri, meta.get("namespace", "default"), meta["name"],
                        meta["uid"])


def normalized_spec(spec: dict) -> dict:
    """The job's spec as the engine reads it: input.uri folded into input.uris."""
    spec = json.loads(json.dumps(spec))
    inputs = spec["input"]
    if "uris" not in inputs:
        inputs["uris"] = [inputs.pop("uri")]
    inputs.pop("uri", None)
    return spec


def plan_entry(split: Split, uri: str) -> dict:
    """A plan's entry for one split: the split (or where it is kept), the node holding its data
    and, for a dataset's block, every node holding a replica."""
    return {"split": split_document(split, uri), "node": split.node,
            **({"replicas": list(split.replicas)} if split.replicas else {})}


def data_nodes_of(planned: dict) -> list[str]:
    """The nodes holding a planned split's data: a dataset block's replicas, or its one node."""
    return planned.get("replicas") or ([planned["node"]] if planned.get("node") else [])


def map_locality(ran: list[tuple[list[str], str | None]], zones: dict[str, str]) -> dict[str, int]:
    """Counts of map tasks, each given as (the nodes holding its data, the node it ran on),
    by where they ran: dataLocal, zoneLocal (another node of a zone holding the data), remote."""
    counts = {"dataLocal": 0, "zoneLocal": 0, "remote": 0}
    for data_nodes, node in ran:
        if node in data_nodes:
            counts["dataLocal"] += 1
        elif node in zones and zones[node] in {zones.get(n) for n in data_nodes}:
            counts["zoneLocal"] += 1
        else:
            counts["remote"] += 1
    return counts


def refuse_local_paths(spec: dict) -> None:
    """On the cluster every location is s3://: a file:// or plain path would name the
    operator's own filesystem, which no task pod sees."""
    inputs = spec.get("input") or {}
    places = [("spec.input.uri", inputs.get("uri")),
              *[(f"spec.input.uris[{i}]", u) for i, u in enumerate(inputs.get("uris") or [])],
              ("spec.output.uri", (spec.get("output") or {}).get("uri")),
              ("spec.intermediate.uri", (spec.get("intermediate") or {}).get("uri")),
              ("spec.code.pickle", (spec.get("code") or {}).get("pickle"))]
    for field_name, uri in places:
        if uri is not None and not str(uri).startswith("s3://"):
            raise ManifestError(f"{field_name} is {uri!r}: on the cluster every location must "
                                "be s3:// (file:// and plain paths name the operator's own "
                                "filesystem)")


def load_plan(job: dict, work: str, settings: Settings,
              stale: Callable[[dict], bool] | None = None) -> Plan:
    """Planned once and kept in the store (plan.json) with the spec it was planned from
    (spec.json, which task pods read too). The output is claimed first (commit.claim_output;
    `stale` says whether another job's lock on it may be taken over)."""
    uri, spec_uri = join(work, "plan.json"), join(work, "spec.json")
    store = store_for(uri)
    if store.exists(uri):
        return Plan(json.loads(store.read_bytes(spec_uri)),
                    json.loads(store.read_bytes(uri))["splits"])
    spec = normalized_spec(job["spec"])
    summary = commit.committed_summary(spec)
    if summary and summary.get("uid") == job["metadata"]["uid"]:
        raise AlreadySucceeded(f"output committed to {commit.output_prefix(spec)}")
    code = (spec.get("code") or {}).get("pickle")
    if code and not store_for(code).exists(code):
        raise ManifestError(f"spec.code.pickle names {code}, which does not exist")
    splits = plan_splits(spec["input"]["uris"], spec["input"]["format"],
                         spec["input"]["splitSize"], servers=settings.node_servers,
                         parallelism=Policy.from_spec(spec).parallelism)
    ReduceTree.of(spec, len(splits)).check_size()
    meta = job["metadata"]
    with _claims:
        commit.claim_output(spec, commit.holder(meta["name"], meta.get("namespace", "default"),
                                                meta["uid"]), stale=stale)
    try:
        plan = Plan(spec, [plan_entry(s, join(work, "splits", f"map-{i:05d}.json"))
                           for i, s in enumerate(splits)])
        store.write_bytes(spec_uri, json.dumps(plan.spec).encode())
        store.write_bytes(uri, json.dumps({"splits": plan.splits}).encode())
    except StorageUnavailable:
        raise  # planned again by the next pass, which finds the claim its own
    except StorageError:
        release_output(job, work)
        raise
    return plan


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
        self.uid = self.meta["uid"]
        self.status = job.get("status") or {}
        self.work = work_uri(job, settings)
        self.logs = logs_uri(job, settings)
        self.cache = _caches.setdefault(self.uid, JobCache())
        self.now = time.time()

    @cached_property
    def store(self):
        return store_for(self.work)

    # -- the pass: observe, derive the phase, run its steps --------------------------------------

    @metrics.timed_pass
    def run(self) -> None:
        if self.meta.get("deletionTimestamp"):
            return  # being deleted: the delete handler stops its pods; nothing new starts
        if self.status.get("phase") in TERMINAL:
            self._expire()
            return
        try:
            credentials = self._credentials()
        except PlanningFailed as e:
            self._record_failed(INVALID_INPUT, str(e), None)
            return
        with using(credentials):  # the job's data is read and written as the job's own user
            self._run()

    def _credentials(self) -> Credentials | None:
        """The job's storage credentials, from the Secret its task pods use too."""
        if self.cache.credentials is None and self.settings.job_credentials:
            storage = self.job["spec"].get("storage") or {}
            name = storage.get("secretName") or self.settings.secret_name
            try:
                secret = self.kube.read_secret(self.namespace, name)
            except ApiException as e:
                raise PlanningFailed(f"spec.storage.secretName: cannot read Secret {name!r} in "
                                     f"namespace {self.namespace}: {e.status} {e.reason}") from e
            if not secret or not secret.get("accessKey") or not secret.get("secretKey"):
                raise PlanningFailed(
                    f"spec.storage.secretName: Secret {name!r} in namespace {self.namespace} "
                    "is missing or lacks accessKey and secretKey (the job's data is read and "
                    "written with them)")
            self.cache.credentials = Credentials(
                secret["accessKey"], secret["secretKey"],
                storage.get("endpoint") or self.settings.s3_endpoint or None)
        return self.cache.credentials

    def _run(self) -> None:
        try:
            plan = self._plan()
        except StorageUnavailable as e:
            self.events(self.job, "Warning", "StorageUnavailable", f"planning waits: {e}")
            return
        except PlanningFailed as e:
            self._record_failed(INVALID_INPUT, str(e), None)
            _caches.pop(self.uid, None)
            return
        except AlreadySucceeded as e:
            # Committed and cleaned up, but the status write was lost: the output says so.
            self._patch(self._status("Succeeded", None, {"completionTime": now_iso(),
                                                         "message": str(e)}))
            _caches.pop(self.uid, None)
            return
        spec = dict(plan.spec, **{k: self.job["spec"][k] for k in MUTABLE
                                  if k in self.job["spec"]})
        policy = Policy.from_spec(spec)
        world = self._observe(plan)
        started = parse_iso(self.status["startTime"]) if self.status.get("startTime") \
            else self.now
        decision = decide(world.tasks, policy, self.now, started)
        metrics.decided(self.job, world.tasks, world.pods, decision, self.now)
        self._record_attempt_failures(world)
        for task in decision.lost_maps:
            self._drop_output(task)
        if decision.phase == "Failed":
            self._stop(world, decision)
            self._record_failed(decision.failure, decision.message, (world, policy))
            self._cleanup()
        elif decision.phase == "Succeeded":
            try:
                output = commit.commit_job(
                    self.name, plan.spec, self.work, self._counters(),
                    trusted=lambda uri: owned_data(uri, self.work, self.settings),
                    job_uid=self.uid)
            except StorageUnavailable:
                raise  # the next pass commits again, from where this one stopped
            except (UntrustedCommit, StorageError) as e:
                self._record_failed(commit_failure(e), str(e), (world, policy))
                self._cleanup()
                return
            self._write_status("Succeeded", world, policy,
                               {"completionTime": now_iso(),
                                "message": f"output committed to {output}"})
            locality = self._locality(plan)
            self.events(self.job, "Normal", "Succeeded",
                        f"output committed to {output}; {locality['dataLocal']} of "
                        f"{len(plan.splits)} map tasks ran on their data's node")
            self._cleanup()
        else:
            self._stop(world, decision)
            for launch in decision.launch:
                self._launch(plan, world, launch)
            if decision.phase != self.status.get("phase"):
                self.events(self.job, "Normal", decision.phase, {
                    "Suspended": "suspended: running attempts stopped, none start"}.get(
                    decision.phase, f"{decision.phase.lower()} started"))
            self._write_status(decision.phase, world, policy)

    # -- observe -------------------------------------------------------------------------------

    def _plan(self) -> Plan:
        if self.cache.plan is None:
            try:
                if not self.settings.local_paths:
                    refuse_local_paths(self.job["spec"])
                self._check_template()
                self.cache.plan = load_plan(self.job, self.work, self.settings,
                                            stale=self._holder_ended)
            except (StorageUnavailable, AlreadySucceeded):
                raise
            except KubemrError as e:
                raise PlanningFailed(str(e)) from e
            except Exception as e:  # planning is deterministic: it would fail again the same way
                raise PlanningFailed(f"the job cannot be planned: {type(e).__name__}: {e}") from e
            plan = self.cache.plan
            tree = ReduceTree.of(plan.spec, len(plan.splits))
            self.events(self.job, "Normal", "Planned",
                        f"{len(plan.splits)} map tasks, " +
                        (f"{tree.combines} combine tasks in {tree.levels} levels, "
                         if tree.levels else "") + f"{plan.spec['reducers']} reduce tasks")
        return self.cache.plan

    def _check_template(self) -> None:
        """Refuse a template as the CRD does (for a job that reached the operator unchecked),
        then have the API server check one pod of each task type (dry run): the embedded
        Kubernetes types (a volume, a toleration) are its to judge, and a pod it refuses would
        only fail each launch, for minutes, before the job failed."""
        spec = self.job["spec"]
        check_template(spec)
        if not any(spec.get(name) for name in TEMPLATE_FIELDS):
            return
        for kind in TASK_TYPES:
            pod = build_task_pod(job=self.job, task={"type": kind, "index": 0, "attempt": 0},
                                 settings=self.settings)
            try:
                self.kube.create_pod(pod, dry_run=True)
            except ApiException as e:
                if e.status not in (400, 422):
                    log.info("%s/%s: the dry run of a %s pod was refused (%s %s); launching "
                             "will tell", self.namespace, self.name, kind, e.status, e.reason)
                    continue
                try:
                    reason = json.loads(e.body or "{}").get("message") or e.reason
                except ValueError:
                    reason = e.reason
                raise ManifestError(f"the API server refuses the {kind} task pods the job's "
                                    f"template makes: {reason}") from None
            except Exception as e:  # the API server out of reach: launching will tell
                log.info("%s/%s: no dry run of a %s pod: %s", self.namespace, self.name, kind, e)

    def _holder_ended(self, claim: dict) -> bool:
        """Whether a lock on the output was left by a cluster job that has ended or is gone
        (the operator stopped before that job's cleanup released it). A local run's lock is
        never judged: only its user knows whether it still runs."""
        if claim.get("runner") != "operator" or not claim.get("job") or not claim.get("uid"):
            return False
        try:
            other = self.kube.get_job(claim.get("namespace") or "default", claim["job"])
        except Exception as e:
            log.warning("cannot read job %s holding an output: %s", claim["job"], e)
            return False
        ended = other is None or other["metadata"]["uid"] != claim["uid"] or \
            (other.get("status") or {}).get("phase") in TERMINAL
        if ended:
            log.info("%s/%s takes over the output lock of %s, which has ended",
                     self.namespace, self.name, commit.describe_holder(claim))
        return ended

    def _observe(self, plan: Plan) -> World:
        pods = {}
        # Succeeded pods are left out: their tasks committed before they exited.
        for pod in self.kube.list_pods(self.namespace, f"{LABEL_JOB_UID}={self.uid}",
                                       unfinished=True):
            labels = pod["metadata"].get("labels", {})
            pods[(labels[LABEL_TASK_TYPE], int(labels[LABEL_TASK_INDEX]),
                  int(labels[LABEL_ATTEMPT]))] = pod
        started: dict[tuple[str, int], set[int]] = {}
        committed: set[tuple[str, int]] = set()
        alive: dict[tuple[str, int, int], float] = {}
        failed: set[tuple[str, int, int]] = set()
        for obj in self.store.list(self.work + "/"):
            entry = commit.parse_entry(self.work, obj.uri)
            if entry is None:
                continue
            task_type, index, what, number = entry
            if what == "COMMIT":
                committed.add((task_type, index))
            elif what == "started":
                started.setdefault((task_type, index), set()).add(number)
            elif what == "alive":
                alive[(task_type, index, number)] = obj.modified
            elif what == "failed":
                failed.add((task_type, index, number))
        ready_nodes = self.kube.ready_nodes()
        tasks = new_tasks(len(plan.splits), plan.spec["reducers"],
                          ReduceTree.of(plan.spec, len(plan.splits)).fan_in)
        world = World(tasks, pods, sum(len(s) for s in started.values()), set())
        for task in tasks:
            key = (task.kind, task.index)
            task.committed = key in committed
            record = self._commit_record(key) if task.committed else None
            task.committed_attempt = record.get("attempt") if record else None
            for number in sorted(started.get(key, ())):
                attempt = task.attempt(number)
                attempt_key = (*key, number)
                if attempt_key in failed:
                    self._from_marker(attempt, attempt_key)
                    world.marked.add(attempt_key)
                elif attempt_key in pods:
                    observe_pod(attempt, pods[attempt_key], self.now, ready_nodes)
                    attempt.progress = alive.get(attempt_key)
                elif task.committed and record and record.get("attempt") == number:
                    attempt.state, attempt.node = SUCCEEDED, record.get("node")
                elif not task.committed:
                    attempt.fail("PodDeleted", "the task's pod was deleted before it finished",
                                 self.now)
                else:
                    attempt.state = SUCCEEDED  # an older attempt of a committed task
                if record and record.get("attempt") == number and "started" in record:
                    attempt.launched = record["started"]
                    attempt.finished = record["started"] + record.get("seconds", 0)
        if all(t.committed for t in tasks if t.kind == "map"):
            self._lose_outputs_on_lost_nodes(tasks, ready_nodes)
        return world

    def _commit_record(self, key: tuple[str, int]) -> dict | None:
        if key not in self.cache.commits:
            record = commit.read_commit(self.work, *key)
            if record is None:
                return None
            record.pop("index", None)  # M x R run indexes stay in the store
            self.cache.commits[key] = _interned_keys(record)
            metrics.attempt_committed(key[0], record)
        return self.cache.commits[key]

    def _from_marker(self, attempt, key: tuple[str, int, int]) -> None:
        body = self.cache.failures.get(key)
        if body is None:
            try:
                body = json.loads(self.store.read_bytes(commit.failed_uri(self.work, *key)))
            except (StorageError, ValueError):
                body = {"failure": "PodDeleted", "message": "unreadable failure record"}
            self.cache.failures[key] = body
        attempt.fail(body["failure"], body.get("message", ""), body.get("finished") or self.now)
        attempt.node = body.get("node")
        attempt.lost_maps = tuple(tuple(x) for x in body.get("lostMaps") or ())

    def _lose_outputs_on_lost_nodes(self, tasks: list[Task], ready_nodes: set[str]) -> None:
        """Map outputs kept on a node that is gone are made again."""
        lost = []
        for task in tasks:
            record = self.cache.commits.get(("map", task.index)) if task.kind == "map" else None
            node = record and node_of(record["data"], self.settings.node_servers)
            if node and ready_nodes and node not in ready_nodes and task.latest:
                task.committed = False
                task.latest.fail(MAP_OUTPUT_LOST, f"its output was kept on node {node}, which "
                                 "is not ready", self.now)
                lost.append(task)
        for task in lost:
            self._drop_output(task)
        if lost:
            self.events(self.job, "Warning", "MapOutputLost",
                        f"map outputs {[t.index for t in lost]} were on a lost node; running "
                        "those maps again")

    # -- act -----------------------------------------------------------------------------------

    def _record_attempt_failures(self, world: World) -> None:
        """Record each attempt failure once in the store, so it counts the same after its pod
        is gone and after a restart; post it as an event."""
        for task in world.tasks:
            for attempt in task.attempts:
                key = (task.kind, task.index, attempt.number)
                if attempt.state != FAILED or key in world.marked:
                    continue
                body = {"failure": attempt.failure, "message": attempt.message[-4000:],
                        "node": attempt.node, "finished": attempt.finished,
                        "lostMaps": [list(x) for x in attempt.lost_maps]}
                self.store.write_bytes(commit.failed_uri(self.work, *key),
                                       json.dumps(body).encode())
                self.cache.failures[key] = body
                world.marked.add(key)
                metrics.attempt_failed(task.kind, attempt.failure)
                last = (attempt.message.strip().splitlines() or [""])[-1]
                self.events(self.job, "Warning", "TaskFailed",
                            f"{task.label} attempt {attempt.number} failed ({attempt.failure}) "
                            f"on {attempt.node or 'no node'}: {last}")

    def _drop_output(self, task: Task) -> None:
        self.store.delete(commit.commit_uri(self.work, task.kind, task.index))
        self.cache.commits.pop((task.kind, task.index), None)

    def _stop(self, world: World, decision: Decision) -> None:
        for stop in decision.stop:
            pod = world.pods.get((stop.task.kind, stop.task.index, stop.attempt.number))
            if pod and not pod["metadata"].get("deletionTimestamp"):
                self.kube.delete_pod(self.namespace, pod["metadata"]["name"])

    def _launch(self, plan: Plan, world: World, launch: Launch) -> None:
        task, number = launch.task, launch.number
        split = plan.splits[task.index] if task.kind == "map" else {}
        document = task_document(
            name=self.name, namespace=self.namespace, spec_uri=join(self.work, "spec.json"),
            work=self.work,
            kind=task.kind, index=task.index, attempt=number, split=split.get("split"),
            data_node=split.get("node"), data_nodes=split.get("replicas"),
            maps=len(plan.splits),
            log=attempt_log_uri(self.logs, task.kind, task.index, number))
        data_nodes = data_nodes_of(split)
        zones = self.kube.node_zones()
        pod = build_task_pod(job=self.job, task=document, settings=self.settings,
                             data_nodes=data_nodes,
                             data_zones=[zones[n] for n in data_nodes if n in zones],
                             avoid_node=launch.avoid_node)
        pod["metadata"]["ownerReferences"] = [{
            "apiVersion": self.job["apiVersion"], "kind": self.job["kind"], "name": self.name,
            "uid": self.uid, "controller": True, "blockOwnerDeletion": True}]
        self.store.write_bytes(commit.started_uri(self.work, task.kind, task.index, number), b"")
        try:
            self.kube.create_pod(pod)
        except ApiException as e:
            message = f"the pod could not be created: {e.status} {e.reason}: " \
                      f"{(e.body or '')[:500]}"
            body = {"failure": LAUNCH_FAILED, "message": message, "node": None,
                    "finished": time.time(), "lostMaps": []}
            self.store.write_bytes(commit.failed_uri(self.work, task.kind, task.index, number),
                                   json.dumps(body).encode())
            metrics.attempt_failed(task.kind, LAUNCH_FAILED)
            self.events(self.job, "Warning", "LaunchFailed", f"{task.label}: {message}")
            return
        if number > 1:
            self.events(self.job, "Normal", "TaskRetried",
                        f"{task.label}: attempt {number} started")

    def _cleanup(self) -> None:
        """At the job's end: its pods as spec.retainPods says, its intermediate data; its
        attempts' logs stay until the job is deleted."""
        self._release_pods()
        if not (self.job["spec"].get("intermediate") or {}).get("keep"):
            try:
                delete_work(self.job, self.settings, logs=False)  # releases the output too
            except StorageError as e:
                log.warning("cannot delete intermediate data of %s: %s", self.name, e)
        else:
            release_output(self.job, self.work)
        _caches.pop(self.uid, None)

    def _release_pods(self) -> None:
        """spec.retainPods: Always keeps every task pod until the job is deleted, OnFailure
        only those that failed, Never none (each attempt's log is in the store)."""
        retain = self.job["spec"].get("retainPods", "Always")
        if retain == "Always":
            return
        try:
            for pod in self.kube.list_pods(self.namespace, f"{LABEL_JOB_UID}={self.uid}"):
                failed = (pod.get("status") or {}).get("phase") == "Failed"
                if not (retain == "OnFailure" and failed) and \
                        not pod["metadata"].get("deletionTimestamp"):
                    self.kube.delete_pod(self.namespace, pod["metadata"]["name"])
        except Exception as e:  # they go with the job anyway
            log.warning("cannot delete the task pods of %s: %s", self.name, e)

    def _expire(self) -> None:
        ttl = self.job["spec"].get("ttlSecondsAfterFinished")
        finished = self.status.get("completionTime")
        if ttl is not None and finished and self.now - parse_iso(finished) >= ttl:
            self.kube.delete_job(self.namespace, self.name)

    # -- the status, built in one place ----------------------------------------------------------

    def _locality(self, plan: Plan) -> dict[str, int]:
        """Where the committed map tasks ran: on a node holding their data, on another node
        of a zone holding it, or elsewhere."""
        ran = [(data_nodes_of(plan.splits[index]), record.get("node"))
               for (task_type, index), record in self.cache.commits.items()
               if task_type == "map" and index < len(plan.splits)]
        return map_locality(ran, self.kube.node_zones())

    def _counters(self) -> dict:
        total: dict = {}
        for record in self.cache.commits.values():
            counter_math.add(total, record.get("counters", {}))
        return total

    def _status(self, phase: str, observed: tuple[World, Policy] | None,
                extra: dict | None = None) -> dict:
        generation = self.meta.get("generation", 1)
        new = {"phase": phase, "observedGeneration": generation,
               "startTime": self.status.get("startTime") or now_iso(),
               "counters": self._counters(), "logs": self.logs, **(extra or {})}
        if observed:
            world, policy = observed
            maps = counts(world.tasks, "map", policy)
            reduces = counts(world.tasks, "reduce", policy)
            new.update(maps=maps, reduces=reduces,
                       mapsDone=f"{maps['succeeded']}/{maps['total']}",
                       reducesDone=f"{reduces['succeeded']}/{reduces['total']}",
                       attempts=world.attempts_started, locality=self._locality(self.cache.plan))
            combines = counts(world.tasks, "combine", policy)
            if combines["total"]:
                levels = max(t.level for t in world.tasks if t.kind == "combine")
                new.update(combines={**combines, "levels": levels},
                           combinesDone=f"{combines['succeeded']}/{combines['total']}")
        new["conditions"] = conditions(self.status.get("conditions") or [], phase,
                                       new.get("message", ""), generation,
                                       reason=new.get("failureClass"))
        return new

    def _write_status(self, phase: str, world: World, policy: Policy,
                      extra: dict | None = None) -> None:
        new = self._status(phase, (world, policy), extra)
        # status.logs never changes: it goes with the first write, and is never a reason for one
        # (an API server with an older CRD drops it, and would be written to every pass).
        if any(self.status.get(k) != v for k, v in new.items() if k not in ("conditions", "logs")) \
                or _changed(self.status.get("conditions"), new["conditions"]):
            self._patch(new)

    def _record_failed(self, failure: str, message: str,
                       observed: tuple[World, Policy] | None) -> None:
        new = self._status("Failed", observed, {"message": message[-4000:],
                                                "failureClass": failure,
                                                "completionTime": now_iso()})
        self._patch(new)
        self.events(self.job, "Warning", "Failed", message[-1000:])

    def _patch(self, status: dict) -> None:
        """Write the status; one the API server refuses for good fails the job with why."""
        try:
            self.kube.patch_status(self.namespace, self.name, status,
                                   self.meta.get("resourceVersion"))
            metrics.status_written(self.job, self.status, status)
        except ApiException as e:
            if e.status == 409:
                raise StalePass(f"{self.namespace}/{self.name} changed during the pass") from e
            if e.status not in (400, 422):
                raise  # transient: the pass runs again and repeats the same steps
            message = f"the API server refused the job's status: {e.reason}: " \
                      f"{(e.body or '')[:1000]}"
            log.error("%s/%s: %s", self.namespace, self.name, message)
            self.kube.patch_status(self.namespace, self.name, {
                "phase": "Failed", "failureClass": "StatusRefused", "message": message,
                "completionTime": now_iso(),
                "conditions": conditions(self.status.get("conditions") or [], "Failed",
                                         message, self.meta.get("generation", 1),
                                         reason="StatusRefused")})
            metrics.status_written(self.job, self.status, {"phase": "Failed"})


def _interned_keys(value):
    """`value` with every dict key interned. json gives each COMMIT its own copy of each key
    ("map_input_records", ...): over a job's thousands of cached records, half their memory."""
    if isinstance(value, dict):
        return {sys.intern(k): _interned_keys(v) for k, v in value.items()}
    return value


def _changed(old: list | None, new: list) -> bool:
    strip = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in old or []]
    return strip != [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in new]


def commit_failure(error: Exception) -> str:
    """The failure class of a job whose commit was refused: another job holds the output, or
    an object is in the way (InvalidInput), a COMMIT names data outside the job
    (UntrustedCommit), or the store refused a request (StorageError): none of them goes away by
    trying again."""
    if isinstance(error, UntrustedCommit):
        return "UntrustedCommit"
    return INVALID_INPUT if isinstance(error, OutputInUse) else STORAGE_ERROR


def owned_data(uri: str, work: str, settings: Settings) -> bool:
    """Whether `uri` lies in the job's work prefix, or in its per-node equivalent."""
    return within(uri, work, settings.node_servers)


def release_output(job: dict, work: str) -> None:
    """Release the job's lock on its output prefix, if it holds it. The output is the job's
    spec's, or, for a job known only by its work prefix (the sweep), the planned spec.json's.
    A lock left behind anyway is taken over once its job has ended (Pass._holder_ended)."""
    meta = job["metadata"]
    spec = job.get("spec") or {}
    try:
        if "output" not in spec:
            planned = join(work, "spec.json")
            if not store_for(planned).exists(planned):
                return  # not planned: a claim made just before is taken over (Pass._holder_ended)
            spec = json.loads(store_for(planned).read_bytes(planned))
        with _claims:
            commit.release_output(spec, lambda claim: claim.get("job") == meta["name"] and
                                  str(claim.get("uid", "")).startswith(meta["uid"]))
    except (StorageError, ValueError, KeyError) as e:
        log.warning("cannot release the output of %s: %s", meta["name"], e)


def delete_work(job: dict, settings: Settings, logs: bool = True) -> None:
    """Release the job's output, then delete its intermediate data: plan, attempt markers,
    map outputs, uncommitted parts; with `logs` (the job is gone), its attempts' logs too.

    Map outputs on per-node servers are found through the COMMITs, and deleted only where they
    lie in the job's own prefix there."""
    work = work_uri(job, settings)
    release_output(job, work)
    for copy in node_copies(work, settings.node_servers):  # every attempt's map output
        store_for(copy + "/").delete_prefix(copy + "/")
    code = (job["spec"].get("code") or {}).get("pickle") or ""
    if code.startswith(code_prefix(job, settings)):
        store_for(code).delete(code)
    store_for(work).delete_prefix(work + "/")
    if logs:
        prefix = logs_uri(job, settings) + "/"
        store_for(prefix).delete_prefix(prefix)


def code_prefix(job: dict, settings: Settings) -> str:
    """Where the SDK uploads a namespace's code bundles; kubemr deletes one with its job."""
    return join(settings.work_uri, "code", job["metadata"].get("namespace", "default")) + "/"


def sweep_orphans(kube: Kube, settings: Settings) -> list[str]:
    """Delete the work prefixes and logs whose job no longer exists (deleted while no operator
    ran); return them. Prefixes are listed before jobs, so a job created meanwhile keeps its own."""
    base = settings.work_uri.rstrip("/") + "/"
    prefixes = set()
    for obj in store_for(base).list(base):
        parts = obj.uri[len(base):].split("/")
        if parts[0] == LOGS_DIR:  # {base}/_logs/{namespace}/{name}-{uid8}/...
            parts = parts[1:]
        if len(parts) > 2 and parts[0] != "code" and \
                (not settings.namespaces or parts[0] in settings.namespaces):
            prefixes.add((parts[0], parts[1]))
    if not prefixes:
        return []
    live = {(j["metadata"]["namespace"], f"{j['metadata']['name']}-{j['metadata']['uid'][:8]}")
            for j in kube.list_jobs(settings.namespaces)}
    swept = []
    for namespace, folder in sorted(prefixes - live):
        name, _, uid = folder.rpartition("-")
        delete_work({"metadata": {"namespace": namespace, "name": name, "uid": uid},
                     "spec": {}}, settings)
        swept.append(f"{namespace}/{folder}")
        log.info("deleted the work of a job that is gone: %s", swept[-1])
    return swept


def reconcile(job: dict, kube: Kube, settings: Settings, events: Events,
              if_idle: bool = False) -> None:
    """One pass over the job as the API server has it now (the caller's copy may be stale).

    A pass asked for while another runs is not dropped: the running one goes round again once
    it ends, so a pod that ended during a pass gets its successor at once, not at the next
    tick. The tick itself asks `if_idle`: a pass now if none runs, else nothing.
    """
    meta = job["metadata"]
    cache = _caches.setdefault(meta["uid"], JobCache())
    if not if_idle:
        cache.pass_wanted = True
    while True:
        if not cache.lock.acquire(blocking=False):
            return  # the pass under way goes round again: it sees what this caller saw
        try:
            cache.pass_wanted = False
            job = kube.get_job(meta.get("namespace", "default"), meta["name"])
            if job is None or job["metadata"]["uid"] != meta["uid"]:
                _caches.pop(meta["uid"], None)
                return
            Pass(job, kube, settings, events).run()
        except StalePass as e:
            log.info("%s; the next pass reads it anew", e)
        finally:
            cache.lock.release()
        if not cache.pass_wanted:
            return
