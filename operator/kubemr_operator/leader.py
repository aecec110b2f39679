"""Leader election on a coordination.k8s.io Lease: of the operator's replicas, one acts.

The leader renews the Lease every RENEW seconds; the others try to take it once it has not been
renewed for its duration. A leader that cannot renew in time stops acting before its Lease
runs out, so two replicas never act at once.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger("kubemr.operator")
LEASE_SECONDS = 15
RENEW_SECONDS = 4


def _micro_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElection:
    def __init__(self, api: client.CoordinationV1Api, namespace: str, name: str, identity: str):
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._renewed = 0.0  # when this replica last renewed its Lease
        self._stop = threading.Event()

    def is_leader(self) -> bool:
        return time.monotonic() - self._renewed < LEASE_SECONDS - RENEW_SECONDS

    def start(self) -> None:
        threading.Thread(target=self._run, name="leader-election", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._try_acquire_or_renew()
            except Exception as e:  # the next round tries again; is_leader() times out
                log.warning("leader election: %s", e)
            self._stop.wait(RENEW_SECONDS)

    def _try_acquire_or_renew(self) -> None:
        started = time.monotonic()
        now = time.time()
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": _micro_time(now)}
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            body = {"metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {**spec, "acquireTime": _micro_time(now), "leaseTransitions": 0}}
            try:
                self.api.create_namespaced_lease(self.namespace, body)
            except ApiException as e:
                if e.status == 409:
                    return  # another replica created it first
                raise
            self._became_leader(started)
            return
        holder = lease.spec.holder_identity
        renewed = lease.spec.renew_time.timestamp() if lease.spec.renew_time else 0
        duration = lease.spec.lease_duration_seconds or LEASE_SECONDS
        if holder != self.identity and holder and now - renewed < duration:
            self._renewed = 0.0
            return  # held by a live leader
        transitions = (lease.spec.lease_transitions or 0) + (holder != self.identity)
        body = {"metadata": {"name": self.name, "namespace": self.namespace,
                             "resourceVersion": lease.metadata.resource_version},
                "spec": {**spec, "leaseTransitions": transitions,
                         "acquireTime": _micro_time(now) if holder != self.identity
                         or not lease.spec.acquire_time
                         else _micro_time(lease.spec.acquire_time.timestamp())}}
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException as e:
            if e.status == 409:
                self._renewed = 0.0
                return  # someone else wrote it first
            raise
        if holder != self.identity:
            log.info("leader election: %s now leads (was %s)", self.identity, holder or "none")
        self._became_leader(started)

    def _became_leader(self, started: float) -> None:
        self._renewed = started  # counted from before the request, to be safe
