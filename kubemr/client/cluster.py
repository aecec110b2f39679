"""Talking to the cluster from the SDK and the CLI: jobs, their task pods, their logs."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kubemr.errors import KubemrError, NotFound
from kubemr.spec.names import API_VERSION, GROUP, KIND, LABEL_ZONE, PLURAL, VERSION

TASK_ORDER = {"map": 0, "combine": 1, "reduce": 2}  # combine: a tree of reduces' levels


@dataclass
class TaskAttempt:
    """One task attempt, as its pod shows it."""

    task_type: str
    index: int
    attempt: int
    pod: str
    phase: str
    node: str
    started: float | None
    finished: float | None
    record: dict | None  # the commit record from the termination message
    error: str

    @property
    def name(self) -> str:
        return f"{self.task_type}-{self.index}"

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


def _timestamp(value) -> float | None:
    return value.timestamp() if value is not None else None


class Cluster:
    def __init__(self, context: str | None = None):
        from kubernetes import client, config

        try:
            config.load_kube_config(context=context)
        except Exception:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                raise KubemrError(
                    "no Kubernetes cluster configured: set KUBECONFIG (e.g. "
                    '`eval "$(hack/cluster.sh env)"`) or run locally with --local'
                ) from None
        self.core = client.CoreV1Api()
        self.custom = client.CustomObjectsApi()

    def _call(self, what: str, fn, *args, **kwargs):
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except ApiException as e:
            if e.status == 404 and not self._crd_installed():
                raise KubemrError(
                    "the MapReduceJob CRD is not installed in this cluster: install kubemr "
                    "with `helm install kubemr charts/kubemr -n kubemr-system "
                    "--create-namespace` (or `kubectl apply -f crds/`)") from None
            if e.status == 404:
                raise NotFound(f"cannot {what}: not found") from None
            if e.status == 409:
                raise KubemrError(f"cannot {what}: it already exists; delete it or choose "
                                  "another name") from None
            if e.status in (401, 403):
                raise KubemrError(f"cannot {what}: the cluster refused ({e.reason}); check "
                                  "your kubeconfig credentials and RBAC") from None
            message = e.reason
            try:
                message = json.loads(e.body).get("message", message)
            except (TypeError, ValueError):
                pass
            raise KubemrError(f"cannot {what}: {message}") from None
        except (HTTPError, OSError) as e:
            raise KubemrError(f"cannot {what}: no cluster reachable ({e.__class__.__name__}); "
                              "is KUBECONFIG right?") from None

    def _crd_installed(self) -> bool:
        """Whether the API server serves MapReduceJobs (API discovery, readable by anyone)."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            groups = client.ApisApi(self.custom.api_client).get_api_versions().groups
        except (ApiException, HTTPError, OSError):  # cannot tell: report the plain 404
            return True
        return any(g.name == GROUP and any(v.version == VERSION for v in g.versions)
                   for g in groups)

    def create_job(self, manifest: dict) -> dict:
        namespace = manifest["metadata"].get("namespace", "default")
        manifest = {**manifest, "apiVersion": API_VERSION}
        return self._call(f"create mapreducejob {manifest['metadata']['name']}",
                          self.custom.create_namespaced_custom_object, GROUP, VERSION,
                          namespace, PLURAL, manifest)

    def get_job(self, namespace: str, name: str) -> dict:
        return self._call(f"get mapreducejob {namespace}/{name}",
                          self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace,
                          PLURAL, name)

    def list_jobs(self, namespace: str | None) -> list[dict]:
        if namespace:
            result = self._call("list mapreducejobs", self.custom.list_namespaced_custom_object,
                                GROUP, VERSION, namespace, PLURAL)
        else:
            result = self._call("list mapreducejobs",
                                self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
        return result["items"]

    def delete_job(self, namespace: str, name: str) -> None:
        self._call(f"delete mapreducejob {namespace}/{name}",
                   self.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace,
                   PLURAL, name)

    def ready_nodes(self) -> list[tuple[str, str | None]]:
        """(name, zone) of each Ready node, by name."""
        nodes = self._call("list nodes", self.core.list_node).items
        return sorted((n.metadata.name, (n.metadata.labels or {}).get(LABEL_ZONE))
                      for n in nodes
                      if any(c.type == "Ready" and c.status == "True"
                             for c in n.status.conditions or []))

    def attempts(self, namespace: str, name: str) -> list[TaskAttempt]:
        pods = self._call("list task pods", self.core.list_namespaced_pod, namespace,
                          label_selector=f"kubemr.io/job={name}").items
        result = []
        for pod in pods:
            labels = pod.metadata.labels
            started = finished = None
            record, error = None, ""
            for status in pod.status.container_statuses or []:
                state = status.state
                if state.running:
                    started = _timestamp(state.running.started_at)
                if state.terminated:
                    started = _timestamp(state.terminated.started_at)
                    finished = _timestamp(state.terminated.finished_at)
                    try:
                        outcome = json.loads(state.terminated.message or "")
                        record = outcome.get("commit")
                        error = outcome.get("error", "")
                    except ValueError:
                        error = (state.terminated.message or state.terminated.reason or "")
            if pod.status.phase == "Failed" and not error:
                error = pod.status.message or pod.status.reason or "failed"
            result.append(TaskAttempt(
                labels["kubemr.io/task-type"], int(labels["kubemr.io/task-index"]),
                int(labels["kubemr.io/attempt"]), pod.metadata.name, pod.status.phase or "",
                pod.spec.node_name or "", started, finished, record, error))
        return sorted(result, key=lambda a: (TASK_ORDER.get(a.task_type, len(TASK_ORDER)),
                                             a.index, a.attempt))

    def events(self, namespace: str, name: str) -> list[dict]:
        """The events on a job, oldest first: time, type, reason, message, count."""
        selector = f"involvedObject.kind={KIND},involvedObject.name={name}"
        items = self._call(f"list events of {name}", self.core.list_namespaced_event, namespace,
                           field_selector=selector).items
        events = [{"time": e.last_timestamp or e.event_time or e.first_timestamp,
                   "type": e.type or "", "reason": e.reason or "", "message": e.message or "",
                   "count": e.count or 1} for e in items]
        events.sort(key=lambda e: e["time"].timestamp() if e["time"] else 0.0)
        for event in events:
            event["time"] = event["time"].strftime("%Y-%m-%dT%H:%M:%SZ") if event["time"] else ""
        return events

    def service_port(self, namespace: str, name: str, port_name: str) -> int:
        """The number of a Service's port named `port_name`."""
        try:
            service = self._call(f"get service {namespace}/{name}",
                                 self.core.read_namespaced_service, name, namespace)
        except NotFound:
            raise NotFound(f"no Service {namespace}/{name}: is kubemr installed there (-n), with "
                           "its dashboard on (the chart's dashboardPort)?") from None
        for port in service.spec.ports or []:
            if port.name == port_name:
                return port.port
        raise KubemrError(f"Service {namespace}/{name} has no port named {port_name}")

    def logs(self, namespace: str, pod: str) -> str:
        return self._call(f"read logs of {pod}", self.core.read_namespaced_pod_log, pod,
                          namespace)
