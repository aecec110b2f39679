"""Tasks and their attempts, as an executor observed them."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubemr.scheduling.tree import ReduceTree

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
ACTIVE = (PENDING, RUNNING)


@dataclass(slots=True)
class Attempt:
    """One attempt of a task: the single record both executors fill in."""

    number: int
    kind: str = ""  # of its task: "map" | "combine" | "reduce"
    index: int = 0
    state: str = PENDING
    failure: str = ""  # the failure class, when failed
    message: str = ""  # why it failed, or why it is still pending
    node: str | None = None
    launched: float | None = None  # when the executor started it
    progress: float | None = None  # when it last made progress (records read or written)
    finished: float | None = None
    # committed outputs the attempt could not read: (map index, attempt) of a map's, or
    # (kind, index, attempt) of any task's
    lost_maps: tuple[tuple, ...] = ()

    @property
    def ok(self) -> bool:
        return self.state == SUCCEEDED

    @property
    def seconds(self) -> float | None:
        if self.launched is None or self.finished is None:
            return None
        return round(self.finished - self.launched, 3)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def fail(self, failure: str, message: str, now: float) -> None:
        self.state, self.failure, self.message = FAILED, failure, message
        self.finished = self.finished or now


@dataclass(slots=True)
class Task:
    kind: str  # "map" | "combine" | "reduce"
    index: int
    committed: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    committed_attempt: int | None = None  # the attempt whose output was committed, if known
    # the tasks whose committed outputs it reads: it starts once they have all committed
    # (reduce tasks without a tree share one list, every map)
    needs: list[Task] = field(default_factory=list, repr=False, compare=False)
    level: int = 0  # of a combine task in the tree of reduces

    @property
    def latest(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def next_number(self) -> int:
        return self.attempts[-1].number + 1 if self.attempts else 1

    def attempt(self, number: int) -> Attempt:
        for attempt in self.attempts:
            if attempt.number == number:
                return attempt
        attempt = Attempt(number, self.kind, self.index)
        self.attempts.append(attempt)
        self.attempts.sort(key=lambda a: a.number)
        return attempt

    def failures(self, failure: str | None = None) -> list[Attempt]:
        return [a for a in self.attempts if a.state == FAILED and
                (failure is None or a.failure == failure)]

    @property
    def label(self) -> str:
        if self.kind == "combine":
            return f"combine task {self.index} (level {self.level})"
        return f"{self.kind} task {self.index}"


def new_tasks(maps: int, reduces: int, fan_in: int | None = None) -> list[Task]:
    """The job's tasks: maps, combines level by level (with a tree of reduces
    of `fan_in`), reduces; each with the tasks it needs."""
    tree = ReduceTree(maps, reduces, fan_in)
    tasks = {"map": [Task("map", i) for i in range(maps)]}
    tasks["combine"] = [Task("combine", i, level=tree.combine(i).level)
                        for i in range(tree.combines)]
    for task in tasks["combine"]:
        task.needs = [tasks[s.kind][s.index] for s in tree.combine_sources(task.index)]
    every_map = tasks["map"]
    tasks["reduce"] = []
    for r in range(reduces):
        needs = every_map if not tree.levels else \
            [tasks[s.kind][s.index] for s in tree.reduce_sources(r)]
        tasks["reduce"].append(Task("reduce", r, needs=needs))
    return tasks["map"] + tasks["combine"] + tasks["reduce"]
