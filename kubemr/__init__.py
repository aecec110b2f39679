"""kubemr: MapReduce on Kubernetes, with a local runner that behaves as the cluster does."""

import importlib

from kubemr.engine.counters import increment_counter
from kubemr.errors import JobFailed, KubemrError, ManifestError, StorageError, UserCodeError

# Imported on first use, so that a task process starts without the SDK, YAML and the runner.
_LAZY = {
    "JobSpec": "kubemr.spec.manifest", "load_manifest": "kubemr.spec.manifest",
    "parse_manifest": "kubemr.spec.manifest", "JobResult": "kubemr.runtime.local",
    "run_local": "kubemr.runtime.local", "Pipeline": "kubemr.client.sdk",
    "Step": "kubemr.client.sdk",
    "read_output": "kubemr.client.sdk", "submit": "kubemr.client.sdk",
    "put": "kubemr.client.datasets", "fsck": "kubemr.client.datasets",
}

__all__ = [
    "JobFailed", "JobResult", "JobSpec", "KubemrError", "ManifestError", "StorageError",
    "Pipeline", "Step", "UserCodeError", "increment_counter", "load_manifest", "parse_manifest",
    "read_output", "run_local", "submit", "put", "fsck",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'kubemr' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
