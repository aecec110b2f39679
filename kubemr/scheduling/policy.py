"""The scheduling policy a job's spec sets; the same fields drive both runners."""

from __future__ import annotations

from dataclasses import dataclass

MAX_BACKOFF = 300.0


@dataclass(frozen=True)
class Policy:
    parallelism: int = 8
    max_attempts: int = 4
    backoff_seconds: float = 5.0
    task_timeout: float = 600.0  # no progress for this long fails the attempt as Timeout
    active_deadline: float | None = None  # the whole job fails past this many seconds
    speculation: bool = True  # backup attempts for stragglers near the end of a phase
    suspended: bool = False  # stop every attempt, start none (spec.suspend)

    @classmethod
    def from_spec(cls, spec: dict) -> Policy:
        deadline = spec.get("activeDeadlineSeconds")
        return cls(parallelism=int(spec.get("parallelism", 8)),
                   max_attempts=int(spec.get("maxAttempts", 4)),
                   backoff_seconds=float(spec.get("backoffSeconds", 5)),
                   task_timeout=float(spec.get("taskTimeoutSeconds", 600)),
                   active_deadline=float(deadline) if deadline is not None else None,
                   speculation=bool(spec.get("speculation", True)),
                   suspended=bool(spec.get("suspend", False)))

    def backoff(self, failures: int) -> float:
        """The wait after the n-th failure that backs off: base, 2 x base, ... up to 5 min."""
        if failures <= 0:
            return 0.0
        return min(self.backoff_seconds * 2 ** (failures - 1), MAX_BACKOFF)
