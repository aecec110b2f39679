"""kopf handlers and the operator's loop: thin, each hands a job to the reconcile pass.

The operator puts no finalizer on jobs, so `kubectl delete` returns at once, with or without an
operator running: task pods go with their job (owner references), and the job's intermediate
data is deleted when the operator sees the deletion, or else by the sweep of work prefixes whose
job is gone. Of several replicas, only the holder of the Lease acts (kubemr_operator.leader).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

import kopf
from kubernetes import client

from kubemr.spec.names import GROUP, LABEL_JOB, LABEL_JOB_UID, MANAGED_BY, PLURAL, VERSION
from kubemr_operator import metrics
from kubemr_operator.config import Settings
from kubemr_operator.kube import Kube
from kubemr_operator.leader import LeaderElection
from kubemr_operator.reconcile import TERMINAL, delete_work, reconcile, sweep_orphans

log = logging.getLogger("kubemr.operator")
settings = Settings.from_env()
SWEEP_SECONDS = 300.0
_kube: Kube | None = None
_leader: LeaderElection | None = None


def kube() -> Kube:
    global _kube
    if _kube is None:
        _kube = Kube()
    return _kube


def acting() -> bool:
    leading = _leader is None or _leader.is_leader()
    metrics.leading(leading)
    return leading


def post_event(job: dict, event_type: str, reason: str, message: str) -> None:
    try:
        kube().post_event(job, event_type, reason, message)
    except Exception as e:  # an event is for people; a lost one must not stop the pass
        log.warning("cannot post event %s on %s: %s", reason, job["metadata"]["name"], e)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_) -> None:
    global _leader
    # Silent watch streams are a known kopf pitfall: reconnect well before the server forgets us.
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.WARNING
    namespace = os.environ.get("POD_NAMESPACE")
    if namespace:
        identity = os.environ.get("POD_NAME") or socket.gethostname()
        _leader = LeaderElection(client.CoordinationV1Api(kube().api_client), namespace,
                                 "kubemr-operator", identity)
        _leader.start()
    _serve_metrics()
    _serve_dashboard()
    threading.Thread(target=_tick_forever, name="reconcile-loop", daemon=True).start()


def _serve_metrics() -> None:
    metrics.serve(settings.metrics_port)  # the module's settings: configure() has kopf's


def _serve_dashboard() -> None:
    """Every replica serves the read-only dashboard, of the watched namespaces' jobs only."""
    if not settings.dashboard_port:
        return
    from kubemr.client.cluster import Cluster
    from kubemr.client.dashboard import ClusterJobs, serve_in_background

    try:
        serve_in_background(ClusterJobs(Cluster(), settings.namespaces), "0.0.0.0",
                            settings.dashboard_port)
    except OSError as e:  # the dashboard is for people: the operator runs without it
        log.warning("cannot serve the dashboard on port %d: %s", settings.dashboard_port, e)
    else:
        log.info("dashboard at http://0.0.0.0:%d/", settings.dashboard_port)


def _wanted(job: dict) -> bool:
    status, spec = job.get("status") or {}, job.get("spec") or {}
    return status.get("phase") not in TERMINAL or spec.get("ttlSecondsAfterFinished") is not None


def _tick_forever() -> None:
    """Every reconcileSeconds, a pass over each running job (level-triggered)."""
    swept = time.monotonic() - SWEEP_SECONDS  # the first sweep soon after start
    while True:
        time.sleep(settings.interval)
        if not acting():
            continue
        try:
            jobs = kube().list_jobs(settings.namespaces)
        except Exception as e:
            log.warning("cannot list jobs: %s", e)
            continue
        metrics.jobs_listed(jobs)
        for job in jobs:
            if _wanted(job):
                _reconcile(job, if_idle=True)
        if time.monotonic() - swept > SWEEP_SECONDS:
            swept = time.monotonic()
            try:
                sweep_orphans(kube(), settings)
            except Exception as e:
                log.warning("sweep of orphaned work prefixes failed: %s", e)


def _reconcile(job: dict, if_idle: bool = False) -> None:
    meta = job["metadata"]
    try:
        reconcile(job, kube(), settings, post_event, if_idle)
    except Exception:
        log.exception("pass over %s/%s failed; the next one retries",
                      meta.get("namespace"), meta.get("name"))


def _plain(value):
    """kopf's body as plain dicts and lists (its mapping views are not JSON)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _watched(namespace: str) -> bool:
    return not settings.namespaces or namespace in settings.namespaces


@kopf.on.event(GROUP, VERSION, PLURAL)
def job_changed(type, body, namespace, **_) -> None:
    """A new or edited job gets a pass now; a deleted one has its pods and data removed."""
    if not acting() or not _watched(namespace):
        return
    job = _plain(body)
    if type == "DELETED":
        _delete_leftovers(job)
    elif type in (None, "ADDED") or job["metadata"].get("generation") != \
            (job.get("status") or {}).get("observedGeneration"):
        if _wanted(job):
            _reconcile(job)


@kopf.on.event("pods", labels={"app.kubernetes.io/managed-by": MANAGED_BY})
def pod_changed(body, namespace, labels, type, **_) -> None:
    """A task pod finished or vanished: run the job's pass now rather than at the next tick."""
    if not acting() or not _watched(namespace):
        return
    phase = body.get("status", {}).get("phase")
    if type not in ("DELETED", "MODIFIED") or (type == "MODIFIED" and
                                               phase not in ("Succeeded", "Failed")):
        return
    job = kube().get_job(namespace, labels.get(LABEL_JOB, ""))
    if job is not None and job["metadata"]["uid"] == labels.get(LABEL_JOB_UID) \
            and _wanted(job):
        _reconcile(job)


def _delete_leftovers(job: dict) -> None:
    meta = job["metadata"]
    namespace = meta.get("namespace", "default")
    for pod in kube().list_pods(namespace, f"{LABEL_JOB_UID}={meta['uid']}"):
        if not pod["metadata"].get("deletionTimestamp"):
            kube().delete_pod(namespace, pod["metadata"]["name"])
    try:
        delete_work(job, settings)
    except Exception as e:
        log.warning("cannot delete the work of %s/%s yet (the sweep will): %s", namespace,
                    meta["name"], e)
