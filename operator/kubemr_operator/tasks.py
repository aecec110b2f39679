"""Decide, from what the cluster and the store show, what each task needs next."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubemr_operator.failures import Outcome

MAX_BACKOFF = 300.0


@dataclass
class TaskState:
    task_type: str
    index: int
    committed: bool = False
    attempts: set[int] = field(default_factory=set)
    outcome: Outcome | None = None  # of the latest attempt

    @property
    def latest(self) -> int:
        return max(self.attempts, default=0)


@dataclass
class Decision:
    start: list[tuple[TaskState, int, str | None]] = field(default_factory=list)
    stop: list[TaskState] = field(default_factory=list)
    failed: TaskState | None = None
    running: int = 0


def backoff_seconds(base: float, attempt: int) -> float:
    """The wait after attempt `attempt` failed: base, 2 x base, 4 x base, ... up to 5 minutes."""
    return min(base * 2 ** (attempt - 1), MAX_BACKOFF)


def decide(tasks: list[TaskState], max_attempts: int, parallelism: int, backoff_base: float,
           now: float) -> Decision:
    """Which attempts to start, keeping at most `parallelism` running, and whether a task has
    failed on every attempt."""
    decision = Decision()
    decision.running = sum(1 for t in tasks if not t.committed and t.latest and
                           t.outcome.state in ("pending", "running", "succeeded"))
    room = parallelism - decision.running
    for task in tasks:
        if task.committed:
            continue
        outcome = task.outcome
        if task.latest == 0:
            candidate = (task, 1, None)
        elif outcome.state in ("pending", "running", "succeeded"):
            continue
        elif outcome.state == "lost":  # not the attempt's fault: no backoff, not counted
            candidate = (task, task.latest + 1, outcome.node)
        elif task.latest >= max_attempts:
            decision.failed = task
            return decision
        else:
            if outcome.finished and now - outcome.finished < backoff_seconds(backoff_base,
                                                                            task.latest):
                continue
            candidate = (task, task.latest + 1, outcome.node)
        if len(decision.start) < room:
            decision.start.append(candidate)
    return decision


def counts(tasks: list[TaskState], max_attempts: int) -> dict[str, int]:
    """Tasks by state; a task waiting to retry is pending, one out of attempts has failed."""
    result = {"total": len(tasks), "pending": 0, "running": 0, "succeeded": 0, "failed": 0}
    for task in tasks:
        if task.committed:
            result["succeeded"] += 1
        elif task.latest == 0 or task.outcome is None:
            result["pending"] += 1
        elif task.outcome.state in ("pending", "running", "succeeded"):
            result["running"] += 1
        elif task.outcome.state == "lost":
            result["pending"] += 1
        elif task.latest >= max_attempts:
            result["failed"] += 1
        else:
            result["pending"] += 1
    return result
