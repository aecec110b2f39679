"""kopf handlers: thin, each hands the job to the reconcile pass."""

from __future__ import annotations

import logging

import kopf

from kubemr.spec.names import GROUP, LABEL_JOB, LABEL_JOB_UID, MANAGED_BY, PLURAL, VERSION
from kubemr_operator.config import Settings
from kubemr_operator.kube import Kube
from kubemr_operator.reconcile import TERMINAL, delete_work, reconcile

settings = Settings.from_env()
_kube: Kube | None = None


def kube() -> Kube:
    global _kube
    if _kube is None:
        _kube = Kube()
    return _kube


def post_event(job: dict, event_type: str, reason: str, message: str) -> None:
    kopf.event(job, type=event_type, reason=reason, message=message)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_) -> None:
    # Silent watch streams are a known kopf pitfall: reconnect well before the server forgets us.
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.WARNING
    settings.persistence.finalizer = "kubemr.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubemr.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kubemr.io", key="last-handled-configuration")


def _running(status, spec, **_) -> bool:
    return status.get("phase") not in TERMINAL or spec.get("ttlSecondsAfterFinished") is not None


@kopf.timer(GROUP, VERSION, PLURAL, interval=settings.interval, when=_running)
def tick(name, namespace, **_) -> None:
    job = kube().get_job(namespace, name)
    if job is not None:
        reconcile(job, kube(), settings, post_event)


@kopf.on.event("pods", labels={"app.kubernetes.io/managed-by": MANAGED_BY})
def pod_changed(body, namespace, labels, type, **_) -> None:
    """A task pod finished or vanished: run the job's pass now rather than at the next tick."""
    phase = body.get("status", {}).get("phase")
    if type not in ("DELETED", "MODIFIED") or (type == "MODIFIED" and
                                               phase not in ("Succeeded", "Failed")):
        return
    job = kube().get_job(namespace, labels.get(LABEL_JOB, ""))
    if job is not None:
        reconcile(job, kube(), settings, post_event)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(body, name, namespace, uid, **_) -> None:
    """Stop the job's task pods, then delete its intermediate data.

    Owner references would delete the pods too, but only after the job is gone, and a task
    still running then could commit into intermediate data already deleted.
    """
    pods = kube().list_pods(namespace, f"{LABEL_JOB_UID}={uid}")
    for pod in pods:
        if not pod["metadata"].get("deletionTimestamp"):
            kube().delete_pod(namespace, pod["metadata"]["name"])
    running = [p for p in pods if p.get("status", {}).get("phase") in ("Pending", "Running")]
    if running:
        raise kopf.TemporaryError(f"waiting for {len(running)} task pods to stop", delay=2)
    delete_work({"metadata": dict(body.metadata), "spec": dict(body.spec)}, settings)
