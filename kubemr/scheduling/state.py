"""Tasks and their attempts, as an executor observed them."""

from __future__ import annotations

from dataclasses import dataclass, field

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
ACTIVE = (PENDING, RUNNING)


@dataclass(slots=True)
class Attempt:
    """One attempt of a task: the single record both executors fill in."""

    number: int
    kind: str = ""  # of its task: "map" | "reduce"
    index: int = 0
    state: str = PENDING
    failure: str = ""  # the failure class, when failed
    message: str = ""  # why it failed, or why it is still pending
    node: str | None = None
    launched: float | None = None  # when the executor started it
    progress: float | None = None  # when it last made progress (records read or written)
    finished: float | None = None
    lost_maps: tuple[int, ...] = ()  # map outputs a reduce attempt could not read

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
    kind: str  # "map" | "reduce"
    index: int
    committed: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    committed_attempt: int | None = None  # the attempt whose output was committed, if known

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
        return f"{self.kind} task {self.index}"


def new_tasks(maps: int, reduces: int) -> list[Task]:
    return [Task("map", i) for i in range(maps)] + [Task("reduce", r) for r in range(reduces)]
