"""Failure classes, and what each one means for the task: the one table both runners follow."""

from __future__ import annotations

from dataclasses import dataclass

USER_ERROR = "UserError"  # user code raised, or the task process exited without a result
TIMEOUT = "Timeout"  # no progress for taskTimeoutSeconds
NOT_STARTED = "ImageOrScheduling"  # the attempt did not start: bad image, nowhere to run it
OOM_KILLED = "OOMKilled"
KILLED = "Killed"  # SIGKILL from outside
STORAGE_ERROR = "StorageError"  # the object store refused or failed a request
LAUNCH_FAILED = "LaunchFailed"  # the executor could not create the attempt (quota, 429, webhook)
NODE_LOST = "NodeLost"
EVICTED = "Evicted"  # evicted, preempted or drained
DELETED = "PodDeleted"  # the attempt was removed by someone else
MAP_OUTPUT_LOST = "MapOutputLost"  # committed map output gone: the map runs again
DEADLINE_EXCEEDED = "DeadlineExceeded"  # the job ran past activeDeadlineSeconds
SUSPENDED = "Suspended"  # stopped because the job was suspended

INFRA_LIMIT = 10
STORAGE_LIMIT = 6  # with backoff 5 s: 155 s of retries before the job fails


@dataclass(frozen=True)
class FailureRule:
    counts: bool  # uses one of the task's maxAttempts
    backs_off: bool  # waits backoffSeconds x 2^n before the next attempt
    avoids_node: bool  # the next attempt prefers another node
    limit: int | None = None  # attempts of this class a task may use, when it does not count


RULES: dict[str, FailureRule] = {
    USER_ERROR: FailureRule(counts=True, backs_off=True, avoids_node=True),
    TIMEOUT: FailureRule(counts=True, backs_off=True, avoids_node=True),
    NOT_STARTED: FailureRule(counts=True, backs_off=True, avoids_node=True),
    OOM_KILLED: FailureRule(counts=True, backs_off=True, avoids_node=False),
    KILLED: FailureRule(counts=True, backs_off=True, avoids_node=True),
    STORAGE_ERROR: FailureRule(counts=False, backs_off=True, avoids_node=False,
                               limit=STORAGE_LIMIT),
    LAUNCH_FAILED: FailureRule(counts=False, backs_off=True, avoids_node=False,
                               limit=INFRA_LIMIT),
    NODE_LOST: FailureRule(counts=False, backs_off=False, avoids_node=True, limit=INFRA_LIMIT),
    EVICTED: FailureRule(counts=False, backs_off=True, avoids_node=True, limit=INFRA_LIMIT),
    DELETED: FailureRule(counts=False, backs_off=False, avoids_node=False, limit=INFRA_LIMIT),
    MAP_OUTPUT_LOST: FailureRule(counts=False, backs_off=False, avoids_node=False,
                                 limit=INFRA_LIMIT),
    SUSPENDED: FailureRule(counts=False, backs_off=False, avoids_node=False),
}

OUT_OF_MEMORY = ("the task ran out of memory: raise spec.resources.limits.memory or lower "
                 "spec.mapBufferSize")


def failure_of_report(report: dict) -> tuple[str, str, tuple[int, ...]]:
    """The class, message and lost map outputs of a failed attempt's own report.

    A report is what the worker writes on failure: {"ok": false, "error", "errorType",
    "lostMaps"?}; the local runner reads it from a file, the operator from the pod's
    termination message.
    """
    error_type = report.get("errorType", "")
    message = report.get("error") or "the task failed without a message"
    if error_type == "MapOutputLost":
        return MAP_OUTPUT_LOST, message, tuple(report.get("lostMaps") or ())
    if error_type in ("StorageError", "StorageUnavailable"):
        return STORAGE_ERROR, message, ()
    if error_type == "MemoryError":
        return OOM_KILLED, f"{OUT_OF_MEMORY} (MemoryError)", ()
    return USER_ERROR, message, ()
