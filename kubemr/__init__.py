"""kubemr: MapReduce on Kubernetes, with a local runner that behaves as the cluster does."""

from kubemr.counters import increment_counter
from kubemr.errors import JobFailed, KubemrError, ManifestError, StorageError, UserCodeError
from kubemr.manifest import JobSpec, load_manifest, parse_manifest
from kubemr.runner import JobResult, run_local
from kubemr.sdk import Pipeline, Step, read_output, submit

__all__ = [
    "JobFailed", "JobResult", "JobSpec", "KubemrError", "ManifestError", "StorageError",
    "Pipeline", "Step", "UserCodeError", "increment_counter", "load_manifest", "parse_manifest",
    "read_output", "run_local", "submit",
]
