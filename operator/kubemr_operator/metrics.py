"""The operator's Prometheus metrics: what its passes saw, each event counted once.

Every replica serves them at /metrics on KUBEMR_METRICS_PORT (the chart's metricsPort). Only
the leader acts, so only its numbers move: `kubemr_leader` is 1 there and 0 on the others,
and a replica that does not lead exports no job gauges. Counters and histograms count what
this process saw while it led: sum them over replicas (`sum(rate(...))`).

Labels take values from fixed sets (task type, failure class, job phase), never a job's name,
namespace, spec or messages: the number of series does not grow with the number of jobs, and
nothing a user wrote reaches the metrics. A job's own numbers are in its status.

Counted once, and how:
- an attempt's failure when the pass writes its `attempt-N.failed` marker, which happens once
  per attempt, also across restarts;
- an attempt's success (and its duration) when the pass first reads its task's COMMIT. An
  operator that restarts, or a replica that takes over, reads every COMMIT again: those that
  were written before it began leading are not counted again (the COMMIT says when its attempt
  ended), so attempts that commit while no replica leads are not counted at all;
- a job's duration when the pass writes its Succeeded or Failed status, which happens once;
- a job's start latency on the first pass that sees one of its attempts running or
  committed; again only when that attempt started after this replica began leading.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from kubemr.scheduling import RULES, Decision, Task
from kubemr.scheduling.state import PENDING, RUNNING

log = logging.getLogger("kubemr.operator")

OTHER = "Other"  # a phase or failure class kubemr does not know (a hand-edited status)
PHASES = ("Pending", "Mapping", "Reducing", "Suspended", "Succeeded", "Failed", OTHER)
ENDED = ("Succeeded", "Failed")
SUCCEEDED = "succeeded"
JOB_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
TASK_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
PASS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The operator's metrics in one registry, and the little they remember between passes."""

    def __init__(self, registry: CollectorRegistry = REGISTRY, since: float | None = None):
        def histogram(name, text, labels=(), buckets=JOB_BUCKETS):
            return Histogram(name, text, labels, buckets=buckets, registry=registry)

        self.leader = Gauge("kubemr_leader", "1 on the operator replica that leads (holds the "
                            "Lease and acts), 0 on the others.", registry=registry)
        self.jobs = Gauge("kubemr_jobs", "MapReduceJobs by phase, as the leader last listed "
                          "them.", ["phase"], registry=registry)
        self.waiting = Gauge("kubemr_tasks_waiting", "Tasks of running jobs waiting to start: "
                             "reason parallelism, ready but held back by the job's "
                             "parallelism; reason pending, an attempt launched whose pod does "
                             "not run yet (scheduling, image pull).", ["reason"],
                             registry=registry)
        self.attempts = Counter("kubemr_task_attempts", "Task attempts that ended, by task type "
                                "and result: succeeded (committed), or the failure class.",
                                ["type", "result"], registry=registry)
        self.task_seconds = histogram("kubemr_task_duration_seconds", "Run time of committed "
                                      "task attempts, from their COMMIT.", ["type"],
                                      TASK_BUCKETS)
        self.job_seconds = histogram("kubemr_job_duration_seconds", "Time from a job's start "
                                     "(status.startTime) to its end, by the phase it ended in.",
                                     ["phase"])
        self.start_latency = histogram("kubemr_job_start_latency_seconds", "Time from a job's "
                                       "creation to its first task attempt running.")
        self.pass_seconds = histogram("kubemr_reconcile_duration_seconds", "Time of one "
                                      "reconcile pass over one job.", buckets=PASS_BUCKETS)
        for phase in PHASES:  # every series that can be known in advance, from 0
            self.jobs.labels(phase)
        for phase in ENDED:
            self.job_seconds.labels(phase)
        for reason in ("parallelism", "pending"):
            self.waiting.labels(reason)
        for kind in ("map", "combine", "reduce"):
            self.attempts.labels(kind, SUCCEEDED)
            self.task_seconds.labels(kind)
        # Events before `since` (when this replica began leading) were another's to count.
        self.since = time.time() if since is None else since
        self._leading: bool | None = None
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[int, int]] = {}  # job uid -> (parallelism, pending)
        self._started: set[str] = set()  # jobs whose start latency is known

    # -- leading and the job list (the operator's loop) -------------------------------------

    def leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        with self._lock:
            self._leading = leading
            self.leader.set(1 if leading else 0)
            if leading:
                self.since = time.time()
            else:  # the new leader counts from here; this replica shows no jobs
                for phase in PHASES:
                    self.jobs.labels(phase).set(0)
                self._waiting.clear()
                self._started.clear()
                self._set_waiting()

    def jobs_listed(self, jobs: Iterable[dict]) -> None:
        """The jobs the loop listed this round: the phase gauge, and forget jobs that are gone."""
        jobs = list(jobs)
        phases = Tally(_phase(job) for job in jobs)
        for phase in PHASES:
            self.jobs.labels(phase).set(phases.get(phase, 0))
        running = {job["metadata"]["uid"] for job in jobs if _phase(job) not in ENDED}
        with self._lock:
            for uid in set(self._waiting) - running:
                del self._waiting[uid]
            self._started &= running
            self._set_waiting()

    # -- what one pass saw ------------------------------------------------------------------

    def decided(self, job: dict, tasks: list[Task], pods: dict, decision: Decision,
                now: float) -> None:
        """After a pass's decision: tasks waiting to start, and the job's start latency."""
        if self._leading is False:
            return  # a pass that ran on as this replica stopped leading
        uid = job["metadata"]["uid"]
        held = decision.waiting
        pending = sum(1 for t in tasks if not t.committed and
                      any(a.state == PENDING for a in t.attempts) and
                      not any(a.state == RUNNING for a in t.attempts))
        first = None if uid in self._started else _first_run(tasks, pods, now)
        with self._lock:
            if decision.phase in ENDED:
                self._waiting.pop(uid, None)
            else:
                self._waiting[uid] = (held, pending)
            self._set_waiting()
            if first is None or uid in self._started:
                return
            self._started.add(uid)
        created = _timestamp(job["metadata"].get("creationTimestamp"))
        if created is not None and first >= self.since:
            self.start_latency.observe(max(0.0, first - created))

    def attempt_failed(self, kind: str, failure: str) -> None:
        """A failed attempt, as its marker is written (once per attempt)."""
        self.attempts.labels(kind, failure if failure in RULES else OTHER).inc()

    def attempt_committed(self, kind: str, record: dict) -> None:
        """A task's COMMIT, the first time this process reads it."""
        try:
            started, seconds = float(record["started"]), float(record["seconds"])
        except (KeyError, TypeError, ValueError):
            started = seconds = None
        if started is not None and started + seconds < self.since:
            return  # committed before this replica led: counted by the one that did
        self.attempts.labels(kind, SUCCEEDED).inc()
        if seconds is not None and seconds >= 0:
            self.task_seconds.labels(kind).observe(seconds)

    def status_written(self, job: dict, before: dict, status: dict) -> None:
        """A status write (`before` is the status the pass read): the job's duration, when
        this is the write that ends the job."""
        phase = status.get("phase")
        if phase not in ENDED or before.get("phase") in ENDED:
            return
        meta = job["metadata"]
        with self._lock:
            self._waiting.pop(meta["uid"], None)
            self._started.discard(meta["uid"])
            self._set_waiting()
        now = time.time()
        start = _timestamp(before.get("startTime")) or \
            _timestamp(meta.get("creationTimestamp")) or now
        self.job_seconds.labels(phase).observe(max(0.0, now - start))

    def _set_waiting(self) -> None:
        self.waiting.labels("parallelism").set(sum(w[0] for w in self._waiting.values()))
        self.waiting.labels("pending").set(sum(w[1] for w in self._waiting.values()))


def _phase(job: dict) -> str:
    phase = (job.get("status") or {}).get("phase") or "Pending"
    return phase if phase in PHASES else OTHER


def _timestamp(value) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _first_run(tasks: list[Task], pods: dict, now: float) -> float | None:
    """When the job's first attempt began running, from what the pass saw: a pod's container
    start, a COMMIT's start; None if no attempt has run yet."""
    times = []
    for task in tasks:
        for attempt in task.attempts:
            pod = pods.get((task.kind, task.index, attempt.number))
            if pod is not None:
                started = _container_started(pod)
                if started is not None:
                    times.append(started)
                elif attempt.state == RUNNING:
                    times.append(now)
            elif task.committed and attempt.number == task.committed_attempt \
                    and attempt.launched is not None:
                times.append(attempt.launched)  # the COMMIT's `started`
    return min(times, default=None)


def _container_started(pod: dict) -> float | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        for key in ("running", "terminated"):
            started = _timestamp((state.get(key) or {}).get("startedAt"))
            if started is not None:
                return started
    return None


# -- the hooks the operator calls: one Metrics at a time (tests put in their own) -----------

_current = Metrics()


def use(metrics: Metrics) -> Metrics:
    """Make `metrics` the one the hooks below update; return the one before."""
    global _current
    previous, _current = _current, metrics
    return previous


def leading(leading: bool) -> None:
    _current.leading(leading)


def jobs_listed(jobs: Iterable[dict]) -> None:
    _current.jobs_listed(jobs)


def decided(job: dict, tasks: list[Task], pods: dict, decision: Decision, now: float) -> None:
    _current.decided(job, tasks, pods, decision, now)


def attempt_failed(kind: str, failure: str) -> None:
    _current.attempt_failed(kind, failure)


def attempt_committed(kind: str, record: dict) -> None:
    _current.attempt_committed(kind, record)


def status_written(job: dict, before: dict, status: dict) -> None:
    _current.status_written(job, before, status)


def timed_pass(run: Callable) -> Callable:
    """Decorates the pass: its duration goes to kubemr_reconcile_duration_seconds."""
    @functools.wraps(run)
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return run(*args, **kwargs)
        finally:
            _current.pass_seconds.observe(time.perf_counter() - started)
    return timed


def serve(port: int) -> None:
    """Serve /metrics on `port` in a thread of its own; 0 serves nothing."""
    if not port:
        return
    from prometheus_client import disable_created_metrics, start_http_server

    disable_created_metrics()  # a `_created` series beside every counter: noise here
    try:
        start_http_server(port)
    except OSError as e:  # metrics are for people: the operator runs without them
        log.warning("cannot serve metrics on port %d: %s", port, e)
    else:
        log.info("metrics at http://0.0.0.0:%d/metrics", port)
