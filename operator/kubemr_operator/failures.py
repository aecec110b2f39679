"""What became of a task attempt, read from its pod, with failures sorted into classes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

USER_ERROR = "UserError"
OOM_KILLED = "OOMKilled"
EVICTED = "Evicted"
NODE_LOST = "NodeLost"
IMAGE_OR_SCHEDULING = "ImageOrScheduling"
TIMEOUT = "Timeout"
DELETED = "PodDeleted"
KILLED = "Killed"

IMAGE_REASONS = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                 "CreateContainerConfigError", "CreateContainerError"}
NODE_REASONS = {"NodeLost", "Shutdown", "NodeShutdown", "Terminated", "NodeAffinity"}


@dataclass(frozen=True)
class Outcome:
    state: str  # pending | running | succeeded | failed
    failure_class: str = ""
    message: str = ""
    node: str | None = None
    finished: float | None = None


def _time(value: str | None) -> float | None:
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


def _failed(pod: dict, node: str | None) -> Outcome:
    status = pod.get("status", {})
    reason = status.get("reason") or ""
    if reason == "Evicted":
        return Outcome("failed", EVICTED, status.get("message", "pod was evicted"), node)
    if reason in NODE_REASONS:
        return Outcome("failed", NODE_LOST, status.get("message") or f"node {node} was lost",
                       node)
    terminated = _terminated(pod) or {}
    finished = _time(terminated.get("finishedAt"))
    if terminated.get("reason") == "OOMKilled":
        return Outcome("failed", OOM_KILLED, "the task ran out of memory (OOMKilled): raise "
                       "spec.resources.limits.memory or lower spec.mapBufferSize", node, finished)
    if reason == "DeadlineExceeded":
        return Outcome("failed", TIMEOUT, status.get("message", "deadline exceeded"), node)
    text = terminated.get("message") or ""
    try:
        report = json.loads(text)
        return Outcome("failed", USER_ERROR, report.get("error") or text, node, finished)
    except ValueError:
        pass
    code = terminated.get("exitCode")
    if code == 137:
        return Outcome("failed", KILLED, "the task was killed (SIGKILL)" +
                       (f": {text.strip()[-500:]}" if text.strip() else ""), node, finished)
    return Outcome("failed", USER_ERROR, f"the task exited with code {code}" +
                   (f": {text.strip()[-1000:]}" if text.strip() else ""), node, finished)


def observe(pod: dict | None, now: float, timeout: float, last_progress: float | None,
            ready_nodes: set[str]) -> Outcome:
    """The attempt's state; `last_progress` is its latest heartbeat (or None)."""
    if pod is None:
        return Outcome("failed", DELETED, "the task's pod was deleted before it finished")
    node = pod.get("spec", {}).get("nodeName")
    phase = pod.get("status", {}).get("phase", "Pending")
    if phase == "Succeeded":
        return Outcome("succeeded", node=node)
    if phase == "Failed":
        return _failed(pod, node)
    if pod.get("metadata", {}).get("deletionTimestamp"):
        if node and node not in ready_nodes:
            return Outcome("failed", NODE_LOST, f"node {node} is not ready", node)
        return Outcome("failed", DELETED, "the task's pod was deleted before it finished", node)
    created = _time(pod.get("metadata", {}).get("creationTimestamp")) or now
    if phase == "Pending":
        reason, message = _waiting_reason(pod)
        if reason in IMAGE_REASONS:
            return Outcome("failed", IMAGE_OR_SCHEDULING, f"{reason}: {message}".strip(": "),
                           node)
        if now - created > timeout:
            conditions = {c.get("type"): c for c in pod.get("status", {}).get("conditions") or []}
            scheduled = conditions.get("PodScheduled", {})
            detail = scheduled.get("message") or reason or "not started"
            return Outcome("failed", IMAGE_OR_SCHEDULING,
                           f"the pod did not start within {timeout:.0f}s: {detail}", node)
        return Outcome("pending", node=node)
    if node and ready_nodes and node not in ready_nodes:
        return Outcome("failed", NODE_LOST, f"node {node} is not ready", node)
    progress = max(created, last_progress or 0)
    if now - progress > timeout:
        return Outcome("failed", TIMEOUT,
                       f"no progress for {now - progress:.0f}s (taskTimeoutSeconds {timeout:.0f})",
                       node)
    return Outcome("running", node=node)
