"""Task pod specs, built as plain dicts (no cluster needed to test them)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from kubemr.spec.names import (
    LABEL_ATTEMPT,
    LABEL_TASK_INDEX,
    LABEL_TASK_TYPE,
    LABEL_ZONE,
    job_labels,
)
from kubemr.spec.template import check_template, merge_affinity, task_template
from kubemr_operator.config import Settings

HOSTNAME = "kubernetes.io/hostname"
LOCALITY_WEIGHT = 50
ZONE_WEIGHT = 20
AVOID_WEIGHT = 100
# What of a template's securityContext goes into the pod's: runAsNonRoot, allowPrivilegeEscalation
# and privileged may only say what kubemr sets anyway (the CRD refuses anything else).
POD_SECURITY = ("runAsUser", "runAsGroup", "fsGroup", "supplementalGroups")


def pod_name(job: str, uid: str, task_type: str, index: int, attempt: int) -> str:
    """Deterministic, unique to the job's UID (a job re-created under the same name never
    adopts the old one's pods), and at most 63 characters: a long job name is cut and hashed."""
    suffix = f"-{uid[:5]}-{task_type}-{index}-{attempt}"
    if len(job) + len(suffix) > 63:
        digest = hashlib.sha1(job.encode()).hexdigest()[:6]
        job = job[: 63 - len(suffix) - 7].rstrip("-.") + "-" + digest
    return job + suffix


def _affinity(locality: str, data_nodes: Sequence[str], data_zones: Sequence[str],
              avoid_node: str | None) -> dict | None:
    """A map pod goes to a node holding its data (a replica), else one in the same zone, else
    anywhere; `required` allows only the data's nodes."""
    preferred, required = [], None
    if data_nodes and locality == "required":
        required = {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": HOSTNAME, "operator": "In", "values": list(data_nodes)}]}]}
    elif data_nodes and locality == "preferred":
        preferred.append({"weight": LOCALITY_WEIGHT, "preference": {"matchExpressions": [
            {"key": HOSTNAME, "operator": "In", "values": list(data_nodes)}]}})
        if data_zones:
            preferred.append({"weight": ZONE_WEIGHT, "preference": {"matchExpressions": [
                {"key": LABEL_ZONE, "operator": "In", "values": sorted(set(data_zones))}]}})
    if avoid_node:
        preferred.append({"weight": AVOID_WEIGHT, "preference": {"matchExpressions": [
            {"key": HOSTNAME, "operator": "NotIn", "values": [avoid_node]}]}})
    node_affinity = {}
    if required:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required
    if preferred:
        node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return {"nodeAffinity": node_affinity} if node_affinity else None


def build_task_pod(*, job: dict, task: dict, settings: Settings, data_nodes: Sequence[str] = (),
                   data_zones: Sequence[str] = (), avoid_node: str | None = None) -> dict:
    """The pod that runs one task attempt. `task` is the worker's task document; a map task's
    data is on `data_nodes` (one, or a dataset block's replicas), in `data_zones`.

    The job's template (kubemr.spec.template) is added to what kubemr sets, never over it: a
    template that would replace kubemr's own settings is refused (ManifestError naming the
    field), as the CRD refuses it."""
    meta, spec = job["metadata"], job["spec"]
    check_template(spec)
    template = task_template(spec, task["type"])
    name = meta["name"]
    storage = spec.get("storage") or {}
    secret = storage.get("secretName") or settings.secret_name
    endpoint = storage.get("endpoint") or settings.s3_endpoint
    env = [
        {"name": "KUBEMR_TASK", "value": json.dumps(task, separators=(",", ":"))},
        {"name": "KUBEMR_SCRATCH", "value": "/scratch"},
        {"name": "KUBEMR_HEARTBEAT_SECONDS", "value": str(settings.heartbeat_seconds)},
        {"name": "KUBEMR_S3_ENDPOINT", "value": endpoint},
        {"name": "KUBEMR_S3_ACCESS_KEY",
         "valueFrom": {"secretKeyRef": {"name": secret, "key": "accessKey"}}},
        {"name": "KUBEMR_S3_SECRET_KEY",
         "valueFrom": {"secretKeyRef": {"name": secret, "key": "secretKey"}}},
        {"name": "KUBEMR_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]
    if settings.node_servers:
        env.append({"name": "KUBEMR_NODE_SERVERS", "value": json.dumps(settings.node_servers)})
        env.append({"name": "KUBEMR_S3_BUCKET_ENDPOINTS", "value": json.dumps(
            {s["bucket"]: s["endpoint"] for s in settings.node_servers})})
    user_env = template.get("env") or []
    named = {item["name"] for item in user_env}
    env = [item for item in env if item["name"] not in named] + user_env
    labels = {**(template.get("labels") or {}),
              **job_labels(name, meta["uid"]), "app.kubernetes.io/component": task["type"],
              LABEL_TASK_TYPE: task["type"], LABEL_TASK_INDEX: str(task["index"]),
              LABEL_ATTEMPT: str(task["attempt"])}
    container = {
        "name": "task",
        "image": spec.get("image") or settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python", "-m", "kubemr.runtime.worker"],
        "env": env,
        "resources": template.get("resources") or {},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"},
                         {"name": "tmp", "mountPath": "/tmp"},
                         *(template.get("volumeMounts") or [])],
    }
    if template.get("envFrom"):
        container["envFrom"] = template["envFrom"]
    pod_spec = {
        "restartPolicy": "Never",
        # The pause container is PID 1, so the task gets SIGTERM and SIGKILL like any process.
        "shareProcessNamespace": True,
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                            "fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"},
                            **{k: v for k, v in (template.get("securityContext") or {}).items()
                               if k in POD_SECURITY}},
        "containers": [container],
        "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}},
                    *(template.get("volumes") or [])],
        # Leave a lost node within seconds, so the attempt is retried elsewhere. The first
        # toleration matching a taint is the one that counts: kubemr's come first, so a
        # template's own toleration of a lost node cannot lengthen the stay.
        "tolerations": [*({"key": key, "operator": "Exists", "effect": "NoExecute",
                           "tolerationSeconds": 20}
                          for key in ("node.kubernetes.io/not-ready",
                                      "node.kubernetes.io/unreachable")),
                        *(template.get("tolerations") or [])],
    }
    for key in ("nodeSelector", "serviceAccountName", "priorityClassName", "imagePullSecrets"):
        if template.get(key):
            pod_spec[key] = template[key]
    affinity = merge_affinity(
        _affinity(spec.get("locality", "preferred") if task["type"] == "map" else "none",
                  data_nodes, data_zones, avoid_node),
        template.get("affinity"))
    if affinity:
        pod_spec["affinity"] = affinity
    metadata = {"name": pod_name(name, meta["uid"], task["type"], task["index"], task["attempt"]),
                "namespace": meta.get("namespace", "default"), "labels": labels}
    if template.get("annotations"):
        metadata["annotations"] = template["annotations"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}
