"""A stand-in for the API server and the kubelet, for unit tests of the operator's pass.

Pods run as real worker processes; their status is what a kubelet would report (phase, exit
code, termination message). It answers the few calls kubemr_operator.kube.Kube makes. The e2e
suite runs the operator against a real cluster; this only makes the pass's logic fast to test.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime

from kubemr_operator.config import Settings
from kubemr_operator.reconcile import reconcile
from kubernetes.client.rest import ApiException

from kubemr.runtime import local
from kubemr.runtime.local import parse_quantity


def lose_before_the_first_reduce(monkeypatch, lose) -> None:
    """Have the local runner call lose(work) once, as it launches the first reduce attempt:
    what the stand-in cluster's lose_before_reduce does for the operator."""
    launch, lost = local.LocalExecutor.launch, []

    def launch_losing_once(self, task, document, now):
        if task.kind == "reduce" and not lost:
            lose(document["work"])
            lost.append(True)
        return launch(self, task, document, now)

    monkeypatch.setattr(local.LocalExecutor, "launch", launch_losing_once)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StandInCluster:
    """Pods as worker processes; pod status as the kubelet would report it."""

    def __init__(self, job: dict, scratch, settings: Settings,
                 lose_before_reduce=None):
        self.jobs = {job["metadata"]["name"]: job}
        self.scratch = scratch
        self.settings = settings
        self.pods: dict[str, dict] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.events: list[tuple[str, str, str]] = []
        self.dry_runs: list[dict] = []
        self.lose_before_reduce = lose_before_reduce

    # The calls the operator makes (kubemr_operator.kube.Kube).
    def list_pods(self, namespace, selector, unfinished=False):
        self.poll()
        key, _, value = selector.partition("=")
        return [json.loads(json.dumps(p)) for p in self.pods.values()
                if p["metadata"]["labels"].get(key) == value
                and not (unfinished and p["status"]["phase"] == "Succeeded")]

    secrets: dict = {}  # (namespace, name) -> data; tests with a real MinIO set their users

    def read_secret(self, namespace, name):
        return self.secrets.get((namespace, name),
                                {"accessKey": "team", "secretKey": "team-secret"})

    def list_jobs(self, namespaces=()):
        return list(self.jobs.values())

    def ready_nodes(self):
        return {"node-a"}

    def node_zones(self):
        return {}

    def create_pod(self, pod, dry_run=False):
        if dry_run:
            self.dry_runs.append(pod)
            return
        name = pod["metadata"]["name"]
        if name in self.pods:
            return
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        for item in container["env"]:  # secretKeyRef values, as the kubelet fills them in
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                env[item["name"]] = self.read_secret(pod["metadata"]["namespace"],
                                                     ref["name"])[ref["key"]]
        document = json.loads(env["KUBEMR_TASK"])
        if document["type"] == "reduce" and self.lose_before_reduce:
            self.lose_before_reduce(document["work"])
            self.lose_before_reduce = None
        path = os.path.join(self.scratch, name)
        with open(path + ".json", "w") as f:
            json.dump(document, f)
        memory = (container["resources"].get("limits") or {}).get("memory")
        limit = parse_quantity(memory) if memory else resource.RLIM_INFINITY
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "kubemr.runtime.worker", path + ".json", "--result",
             path + ".result"],
            # the pod's own variables with a plain value; of kubemr's, the job's storage
            # credentials, and the rest as a pod would have them here
            env={**os.environ, **{k: v for k, v in env.items() if not k.startswith("KUBEMR_")},
                 **{k: v for k, v in env.items() if k.startswith("KUBEMR_S3_") and v},
                 "KUBEMR_SCRATCH": str(self.scratch),
                 "KUBEMR_HEARTBEAT_SECONDS": env["KUBEMR_HEARTBEAT_SECONDS"],
                 "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
        pod = json.loads(json.dumps(pod))
        pod["metadata"]["creationTimestamp"] = iso(time.time())
        pod["spec"]["nodeName"] = "node-a"
        pod["status"] = {"phase": "Running"}
        self.pods[name] = pod

    def delete_pod(self, namespace, name):
        process = self.processes.pop(name, None)
        if process:
            process.kill()
            process.wait()
        self.pods.pop(name, None)

    @property
    def job(self) -> dict:
        return next(iter(self.jobs.values()))

    @job.setter
    def job(self, job: dict) -> None:
        self.jobs[job["metadata"]["name"]] = job

    def get_job(self, namespace, name):
        return self.jobs.get(name)

    def patch_status(self, namespace, name, status, resource_version=None):
        job = self.jobs[name]
        meta = job["metadata"]
        if resource_version and resource_version != meta.get("resourceVersion"):
            raise ApiException(status=409, reason="Conflict")
        job["status"] = {**job.get("status", {}), **status}
        meta["resourceVersion"] = str(int(meta.get("resourceVersion", "1")) + 1)

    def delete_job(self, namespace, name):
        raise AssertionError("no TTL in these jobs")

    def poll(self):
        for name, process in list(self.processes.items()):
            code = process.poll()
            if code is None:
                continue
            del self.processes[name]
            try:
                with open(os.path.join(self.scratch, name + ".result")) as f:
                    message = f.read()
            except OSError:
                message = ""
            terminated = {"exitCode": 137 if code < 0 else code, "message": message,
                          "finishedAt": iso(time.time())}
            self.pods[name]["status"] = {
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [{"state": {"terminated": terminated}}]}

    def stop_all(self):
        for name in list(self.processes):
            self.delete_pod("team", name)

    def post_event(self, job, event_type, reason, message):
        self.events.append((event_type, reason, message))




def job_object(spec: dict, name: str = "job", uid: str = "0a1b2c3d4e5f") -> dict:
    return {"apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
            "metadata": {"name": name, "namespace": "team", "uid": uid, "generation": 1},
            "spec": json.loads(json.dumps(spec)), "status": {}}


def run_to_the_end(job: dict, cluster: StandInCluster, settings: Settings, timeout=120,
                   between=None) -> dict:
    """Reconcile until the job's status is terminal; `between()` runs after each pass."""
    deadline = time.time() + timeout
    try:
        while job["status"].get("phase") not in ("Succeeded", "Failed"):
            assert time.time() < deadline, f"the job did not end: {job['status']}"
            reconcile(job, cluster, settings, cluster.post_event)
            if between:
                between()
            time.sleep(0.05)
    finally:
        cluster.stop_all()
    return job["status"]
