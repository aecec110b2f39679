"""Operator settings, from its environment (the helm chart sets them)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    # URI under which each job keeps its intermediate data, in a folder of its own.
    work_uri: str = "s3://kubemr-work"
    # Image of the task pods when a job names none.
    image: str = "kubemr/kubemr:dev"
    image_pull_policy: str = "IfNotPresent"
    # S3 endpoint the task pods use when a job names none (KUBEMR_TASK_S3_ENDPOINT, else the
    # operator's own KUBEMR_S3_ENDPOINT).
    s3_endpoint: str = ""
    # Secret (in the job's namespace) with accessKey/secretKey when a job names none.
    secret_name: str = "kubemr-storage"
    # Seconds between reconcile passes of a running job.
    interval: float = 2.0
    # Seconds between task heartbeats.
    heartbeat_seconds: float = 10.0
    # Port of the Prometheus metrics endpoint (/metrics); 0 serves none.
    metrics_port: int = 8080
    # Port of the read-only dashboard (kubemr.client.dashboard); 0 serves none.
    dashboard_port: int = 8081
    # Per-node MinIO servers: [{"node": ..., "endpoint": ..., "bucket": ...}].
    node_servers: list = field(default_factory=list)
    # The namespaces whose jobs this operator runs (KUBEMR_NAMESPACES, comma-separated);
    # empty means every namespace.
    namespaces: tuple[str, ...] = ()
    # Whether jobs may name file:// or plain paths (the operator's own filesystem): only tests
    # that run the pass without a cluster set it (KUBEMR_ALLOW_LOCAL_PATHS=1).
    local_paths: bool = False
    # Whether the operator reads and writes a job's data with the job's own credentials (its
    # storage Secret), as its task pods do, rather than its own: on, but where no Secrets exist
    # (tests that run the pass without a cluster).
    job_credentials: bool = True

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            work_uri=env.get("KUBEMR_WORK_URI", cls.work_uri),
            image=env.get("KUBEMR_IMAGE", cls.image),
            image_pull_policy=env.get("KUBEMR_IMAGE_PULL_POLICY", cls.image_pull_policy),
            s3_endpoint=env.get("KUBEMR_TASK_S3_ENDPOINT") or env.get("KUBEMR_S3_ENDPOINT", ""),
            secret_name=env.get("KUBEMR_STORAGE_SECRET", cls.secret_name),
            interval=float(env.get("KUBEMR_RECONCILE_SECONDS", cls.interval)),
            heartbeat_seconds=float(env.get("KUBEMR_HEARTBEAT_SECONDS", cls.heartbeat_seconds)),
            metrics_port=int(env.get("KUBEMR_METRICS_PORT") or cls.metrics_port),
            dashboard_port=int(env.get("KUBEMR_DASHBOARD_PORT") or cls.dashboard_port),
            node_servers=json.loads(env.get("KUBEMR_NODE_SERVERS") or "[]"),
            local_paths=env.get("KUBEMR_ALLOW_LOCAL_PATHS") == "1",
            namespaces=tuple(n.strip() for n in env.get("KUBEMR_NAMESPACES", "").split(",")
                             if n.strip()),
        )
