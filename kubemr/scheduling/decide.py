"""`decide`: from the tasks as observed and the clock, what to launch, what to stop, and
whether the job has failed. Pure: state and clock in, actions out."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubemr.scheduling.failures import (
    DEADLINE_EXCEEDED,
    MAP_OUTPUT_LOST,
    NOT_STARTED,
    RULES,
    SUSPENDED,
    TIMEOUT,
    USER_ERROR,
)
from kubemr.scheduling.policy import Policy
from kubemr.scheduling.state import PENDING, RUNNING, SUCCEEDED, Attempt, Task

SUPERSEDED = "Superseded"  # another attempt of the task committed first
JOB_FAILED = "JobFailed"


@dataclass(frozen=True)
class Launch:
    task: Task
    number: int
    avoid_node: str | None = None
    backup: bool = False  # a second attempt beside a running one (speculation)


@dataclass(frozen=True)
class Stop:
    task: Task
    attempt: Attempt
    reason: str  # a failure class, SUPERSEDED or JOB_FAILED


@dataclass
class Decision:
    phase: str  # Mapping | Reducing | Succeeded | Failed (Reducing: every map has committed)
    launch: list[Launch] = field(default_factory=list)
    stop: list[Stop] = field(default_factory=list)
    lost_maps: list[Task] = field(default_factory=list)  # committed outputs to make again
    failure: str = ""  # the class that failed the job
    message: str = ""
    waiting: int = 0  # tasks ready to run but held back by parallelism or backoff


def decide(tasks: list[Task], policy: Policy, now: float,
           started: float | None = None) -> Decision:
    """Marks timed-out attempts and lost map outputs failed on `tasks`, then decides."""
    stops = _time_out(tasks, policy, now)
    if policy.active_deadline is not None and started is not None \
            and now - started > policy.active_deadline:
        return _fail(tasks, stops, DEADLINE_EXCEEDED,
                     f"the job ran longer than activeDeadlineSeconds "
                     f"({policy.active_deadline:.0f}s)")
    maps = [t for t in tasks if t.kind == "map"]
    lost = _lose_outputs(tasks, now)
    mapping = not all(t.committed for t in maps)
    if all(t.committed for t in tasks):
        return Decision("Succeeded", stop=stops)
    if policy.suspended:
        return _suspend(tasks, stops, lost, now)
    decision = Decision("Mapping" if mapping else "Reducing", stop=stops, lost_maps=lost)
    for task in tasks:
        failure = _exhausted(task, policy)
        if failure:
            return _fail(tasks, stops, *failure)
    active = _ready(tasks)
    running = sum(1 for t in tasks if not t.committed for a in t.attempts
                  if a.active or a.state == SUCCEEDED)
    room = policy.parallelism - running
    for task in active:
        launch = _next_attempt(task, policy, now)
        if launch is None:
            continue
        if len(decision.launch) < room:
            decision.launch.append(launch)
        else:
            decision.waiting += 1
    if policy.speculation and not decision.launch and not decision.waiting:
        for kind in ("map", "combine", "reduce"):
            room = policy.parallelism - running - len(decision.launch)
            peers = [t for t in active if t.kind == kind]
            if peers:
                peers += [t for t in tasks if t.kind == kind and t.committed]
                decision.launch += _backups(peers, now)[:max(0, room)]
    return decision


LAUNCH_ORDER = {"combine": 0, "map": 1, "reduce": 2}


def _ready(tasks: list[Task]) -> list[Task]:
    """The uncommitted tasks whose inputs have all committed. Combine tasks come first, so a
    tree of reduces keeps pace with the maps rather than waiting for the last of them."""
    met: dict[int, bool] = {}  # id(needs) -> all committed: reduce tasks share one list

    def needs_met(task: Task) -> bool:
        key = id(task.needs)
        if key not in met:
            met[key] = all(t.committed for t in task.needs)
        return met[key]

    ready = [t for t in tasks if not t.committed and needs_met(t)]
    return sorted(ready, key=lambda t: LAUNCH_ORDER[t.kind])


SPECULATE_AFTER = 1.5  # a backup starts past 1.5 x the median time of the phase's committed tasks
SPECULATE_SLACK = 2.0  # ... plus this many seconds, so that short tasks do not all get one
SPECULATE_PEERS = 3  # committed tasks needed before a median means anything
SPECULATE_SHARE = 0.1  # at most this share of the phase's tasks run a backup at once


def _backups(tasks: list[Task], now: float) -> list[Launch]:
    """Backup attempts for stragglers (MapReduce's backup tasks, Hadoop's speculation): when
    every task of the phase has started, a task running much longer than its committed peers
    gets a second attempt, on another node; the first to commit wins."""
    durations = sorted(a.finished - a.launched for t in tasks if t.committed
                       for a in t.attempts if a.number == t.committed_attempt
                       and a.launched is not None and a.finished is not None)
    if len(durations) < SPECULATE_PEERS:
        return []
    median = durations[len(durations) // 2]
    limit = max(1, int(len(tasks) * SPECULATE_SHARE))
    backups = sum(1 for t in tasks if not t.committed and
                  sum(1 for a in t.attempts if a.active) > 1)
    launches = []
    for task in tasks:
        running = [a for a in task.attempts if a.active]
        if task.committed or len(running) != 1 or running[0].state != RUNNING:
            continue
        elapsed = now - (running[0].launched or now)
        if elapsed > SPECULATE_AFTER * median + SPECULATE_SLACK and backups < limit:
            launches.append(Launch(task, task.next_number, running[0].node, backup=True))
            backups += 1
    return launches


def _time_out(tasks: list[Task], policy: Policy, now: float) -> list[Stop]:
    stops = []
    timeout = policy.task_timeout
    for task in tasks:
        for attempt in task.attempts:
            if not attempt.active:
                continue
            if task.committed:
                if attempt.number != task.committed_attempt:
                    stops.append(Stop(task, attempt, SUPERSEDED))
            elif attempt.state == PENDING and attempt.launched is not None \
                    and now - attempt.launched > timeout:
                detail = f": {attempt.message}" if attempt.message else ""
                attempt.fail(NOT_STARTED, f"the attempt did not start within {timeout:.0f}s"
                             f"{detail}", now)
                stops.append(Stop(task, attempt, NOT_STARTED))
            elif attempt.state == RUNNING:
                since = max(attempt.launched or now, attempt.progress or 0)
                if now - since > timeout:
                    attempt.fail(TIMEOUT, f"no progress for {now - since:.0f}s "
                                 f"(taskTimeoutSeconds {timeout:.0f})", now)
                    stops.append(Stop(task, attempt, TIMEOUT))
    return stops


def _lose_outputs(tasks: list[Task], now: float) -> list[Task]:
    """Committed outputs that an attempt could not read are made again."""
    by_key = {(t.kind, t.index): t for t in tasks}
    lost = []
    for reader in tasks:
        attempt = reader.latest
        if attempt is None or attempt.failure != MAP_OUTPUT_LOST:
            continue
        for entry in attempt.lost_maps:
            kind, index, number = entry if len(entry) == 3 else ("map", *entry)
            task = by_key.get((kind, index))
            committed = task.committed_attempt or (task.latest and task.latest.number) \
                if task else None
            if task and task.committed and committed == number:
                task.committed, task.committed_attempt = False, None
                task.attempt(number).fail(MAP_OUTPUT_LOST, f"its committed output was lost: "
                                          f"{reader.label} could not read it", now)
                lost.append(task)
    return lost


def _exhausted(task: Task, policy: Policy) -> tuple[str, str] | None:
    attempt = task.latest
    if task.committed or attempt is None or attempt.state != "failed":
        return None
    rule = RULES.get(attempt.failure, RULES[USER_ERROR])
    tail = "\n".join(attempt.message.strip().splitlines()[-10:])
    if rule.counts:
        used = sum(1 for a in task.failures() if RULES.get(a.failure, rule).counts)
        if used >= policy.max_attempts:
            return attempt.failure, (f"{task.label} failed on all {policy.max_attempts} "
                                     f"attempts ({attempt.failure}): {tail}")
    elif rule.limit is not None and len(task.failures(attempt.failure)) >= rule.limit:
        return attempt.failure, (f"{task.label} failed {rule.limit} times "
                                 f"({attempt.failure}): {tail}")
    return None


def _next_attempt(task: Task, policy: Policy, now: float) -> Launch | None:
    if task.committed:
        return None
    attempt = task.latest
    if attempt is None:
        return Launch(task, 1)
    if attempt.state != "failed":
        return None
    rule = RULES.get(attempt.failure, RULES[USER_ERROR])
    if rule.backs_off and attempt.finished is not None:
        backoffs = sum(1 for a in task.failures() if RULES.get(a.failure, rule).backs_off)
        if now - attempt.finished < policy.backoff(backoffs):
            return None
    return Launch(task, task.next_number, attempt.node if rule.avoids_node else None)


def _suspend(tasks: list[Task], stops: list[Stop], lost: list[Task], now: float) -> Decision:
    """Every running attempt stops, as not the task's fault; nothing starts."""
    stopping = {id(s.attempt) for s in stops}
    for task in tasks:
        for attempt in task.attempts:
            if attempt.active and id(attempt) not in stopping and not task.committed:
                attempt.fail(SUSPENDED, "stopped: the job was suspended", now)
                stops.append(Stop(task, attempt, SUSPENDED))
    return Decision("Suspended", stop=stops, lost_maps=lost)


def _fail(tasks: list[Task], stops: list[Stop], failure: str, message: str) -> Decision:
    stopping = {id(s.attempt) for s in stops}
    stops = stops + [Stop(t, a, JOB_FAILED) for t in tasks for a in t.attempts
                     if a.active and id(a) not in stopping]
    return Decision("Failed", stop=stops, failure=failure, message=message)


def counts(tasks: list[Task], kind: str, policy: Policy) -> dict[str, int]:
    """Tasks of one kind by state, as the status shows them."""
    result = {"total": 0, "pending": 0, "running": 0, "succeeded": 0, "failed": 0}
    for task in tasks:
        if task.kind != kind:
            continue
        result["total"] += 1
        attempt = task.latest
        if task.committed:
            result["succeeded"] += 1
        elif attempt is None:
            result["pending"] += 1
        elif attempt.active or attempt.state == SUCCEEDED:
            result["running"] += 1
        elif _exhausted(task, policy):
            result["failed"] += 1
        else:
            result["pending"] += 1
    return result
