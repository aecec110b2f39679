"""The few Kubernetes API calls the operator makes, returning plain dicts."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from kubemr.spec.names import API_VERSION, GROUP, KIND, LABEL_ZONE, PLURAL, VERSION

NODE_CACHE_SECONDS = 5.0


class Kube:
    def __init__(self) -> None:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        self.api_client = client.ApiClient()
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self._nodes: tuple[float, set[str]] = (0.0, set())
        self._zones: dict[str, str] = {}

    def get_job(self, namespace: str, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                            name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def list_jobs(self, namespaces: tuple[str, ...] = ()) -> list[dict]:
        """Every MapReduceJob, or those of `namespaces`."""
        if not namespaces:
            return self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        jobs = []
        for namespace in namespaces:
            jobs += self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace,
                                                              PLURAL)["items"]
        return jobs

    def post_event(self, job: dict, event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event on the job (from any thread: the operator's loop is not kopf's)."""
        meta = job["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.core.create_namespaced_event(meta["namespace"], {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": job.get("apiVersion", API_VERSION),
                               "kind": job.get("kind", KIND), "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": event_type, "reason": reason, "message": message[:1024],
            "source": {"component": "kubemr-operator"}, "reportingComponent": "kubemr-operator",
            "firstTimestamp": now, "lastTimestamp": now, "eventTime": None, "count": 1})

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data, decoded; None if there is no such Secret."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def patch_status(self, namespace: str, name: str, status: dict,
                     resource_version: str | None = None) -> None:
        """Merge `status` in; with `resource_version`, only if the job is still at that version
        (else 409: whoever wrote since then knew more)."""
        body: dict = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, body)

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                        propagation_policy="Background")
        except ApiException as e:
            if e.status != 404:
                raise

    def list_pods(self, namespace: str, selector: str, unfinished: bool = False) -> list[dict]:
        """The pods' metadata, status and node; with `unfinished`, not those that succeeded.

        Read as plain JSON and trimmed: a job's pods run to thousands, and the client's model
        objects for them would cost the operator hundreds of MiB.
        """
        response = self.core.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False,
            field_selector="status.phase!=Succeeded" if unfinished else None)
        pods = json.loads(response.data)["items"]
        for pod in pods:
            pod["metadata"].pop("managedFields", None)
            pod["spec"] = {"nodeName": pod.get("spec", {}).get("nodeName")}
        return pods

    def create_pod(self, pod: dict, dry_run: bool = False) -> None:
        """Create the pod if it does not exist; with `dry_run`, only have it checked."""
        try:
            self.core.create_namespaced_pod(pod["metadata"]["namespace"], pod,
                                            dry_run="All" if dry_run else None)
        except ApiException as e:
            if e.status != 409:
                raise

    def delete_pod(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=5)
        except ApiException as e:
            if e.status != 404:
                raise

    def ready_nodes(self) -> set[str]:
        self._list_nodes()
        return self._nodes[1]

    def node_zones(self) -> dict[str, str]:
        """Each node's zone (topology.kubernetes.io/zone), for the nodes that carry one."""
        self._list_nodes()
        return self._zones

    def _list_nodes(self) -> None:
        if time.time() - self._nodes[0] > NODE_CACHE_SECONDS:
            nodes, zones = set(), {}
            for node in self.core.list_node().items:
                zone = (node.metadata.labels or {}).get(LABEL_ZONE)
                if zone:
                    zones[node.metadata.name] = zone
                for condition in node.status.conditions or []:
                    if condition.type == "Ready" and condition.status == "True":
                        nodes.add(node.metadata.name)
            self._nodes, self._zones = (time.time(), nodes), zones
