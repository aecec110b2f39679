"""What became of a task attempt, read from its pod, in the scheduler's terms."""

from __future__ import annotations

import json
from datetime import datetime

from kubemr.scheduling import Attempt, failure_of_report
from kubemr.scheduling.failures import (
    DELETED,
    EVICTED,
    KILLED,
    NODE_LOST,
    NOT_STARTED,
    OOM_KILLED,
    OUT_OF_MEMORY,
    TIMEOUT,
    USER_ERROR,
)
from kubemr.scheduling.state import PENDING, RUNNING, SUCCEEDED

SIGTERM_EXIT, SIGKILL_EXIT = 143, 137
IMAGE_REASONS = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                 "CreateContainerConfigError", "CreateContainerError"}
NODE_REASONS = {"NodeLost", "Shutdown", "NodeShutdown", "Terminated", "NodeAffinity"}
EVICTION_REASONS = {"Evicted", "Preempting", "Preempted", "TerminationByKubelet"}


def iso_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _terminated(pod: dict) -> dict | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return terminated
    return None


def _waiting_reason(pod: dict) -> tuple[str, str]:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting")
        if waiting:
            return waiting.get("reason", ""), waiting.get("message", "")
    return "", ""


def _disruption(pod: dict) -> str:
    """The reason of a DisruptionTarget condition: eviction, preemption, drain, node loss."""
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            return condition.get("reason", "")
    return ""


def _failed(attempt: Attempt, pod: dict, now: float) -> None:
    status = pod.get("status", {})
    reason = status.get("reason") or ""
    terminated = _terminated(pod) or {}
    finished = iso_time(terminated.get("finishedAt")) or now
    disruption = _disruption(pod)
    if reason in EVICTION_REASONS or disruption in ("EvictionByEvictionAPI",
                                                    "PreemptionByScheduler",
                                                    "TerminationByKubelet"):
        attempt.fail(EVICTED, status.get("message") or f"the pod was evicted ({disruption})",
                     finished)
    elif reason in NODE_REASONS or disruption == "DeletionByTaintManager":
        attempt.fail(NODE_LOST, status.get("message") or f"node {attempt.node} was lost",
                     finished)
    elif terminated.get("reason") == "OOMKilled":
        attempt.fail(OOM_KILLED, f"{OUT_OF_MEMORY} (OOMKilled)", finished)
    elif reason == "DeadlineExceeded":
        attempt.fail(TIMEOUT, status.get("message", "deadline exceeded"), finished)
    elif pod.get("metadata", {}).get("deletionTimestamp") and \
            terminated.get("exitCode") in (SIGTERM_EXIT, SIGKILL_EXIT):
        # Stopped by its pod's deletion (SIGTERM, then SIGKILL): not the task's fault.
        attempt.fail(DELETED, "the task's pod was deleted before it finished", finished)
    else:
        text = terminated.get("message") or ""
        try:
            report = json.loads(text)
        except ValueError:
            report = None
        if isinstance(report, dict) and not report.get("ok", True):
            failure, message, lost = failure_of_report(report)
            attempt.fail(failure, message, finished)
            attempt.lost_maps = tuple(tuple(x) for x in lost)
            return
        code = terminated.get("exitCode")
        detail = f": {text.strip()[-1000:]}" if text.strip() else ""
        if code == SIGKILL_EXIT:
            attempt.fail(KILLED, "the task was killed (SIGKILL)" + detail, finished)
        else:
            attempt.fail(USER_ERROR, f"the task exited with code {code}" + detail, finished)
    attempt.finished = finished


def observe_pod(attempt: Attempt, pod: dict, now: float, ready_nodes: set[str]) -> None:
    """Fill in `attempt` from its pod."""
    attempt.node = pod.get("spec", {}).get("nodeName")
    attempt.launched = iso_time(pod.get("metadata", {}).get("creationTimestamp")) or now
    phase = pod.get("status", {}).get("phase", "Pending")
    if phase == "Succeeded":
        attempt.state = SUCCEEDED
    elif phase == "Failed":
        _failed(attempt, pod, now)
    elif pod.get("metadata", {}).get("deletionTimestamp"):
        if attempt.node and ready_nodes and attempt.node not in ready_nodes:
            attempt.fail(NODE_LOST, f"node {attempt.node} is not ready", now)
        elif _disruption(pod):
            attempt.fail(EVICTED, f"the pod was evicted ({_disruption(pod)})", now)
        else:
            attempt.fail(DELETED, "the task's pod was deleted before it finished", now)
    elif phase == "Pending":
        reason, message = _waiting_reason(pod)
        if reason in IMAGE_REASONS:
            attempt.fail(NOT_STARTED, f"{reason}: {message}".strip(": "), now)
            return
        conditions = {c.get("type"): c for c in pod.get("status", {}).get("conditions") or []}
        attempt.state = PENDING
        attempt.message = conditions.get("PodScheduled", {}).get("message") or reason
    elif attempt.node and ready_nodes and attempt.node not in ready_nodes:
        attempt.fail(NODE_LOST, f"node {attempt.node} is not ready", now)
    else:
        attempt.state = RUNNING
