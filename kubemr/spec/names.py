"""kubemr's names on the cluster, in one place: the API group, version and kind, and the labels
every task pod carries."""

GROUP = "kubemr.io"
VERSION = "v1alpha1"
PLURAL = "mapreducejobs"
KIND = "MapReduceJob"
API_VERSION = f"{GROUP}/{VERSION}"

LABEL_JOB = "kubemr.io/job"
LABEL_JOB_UID = "kubemr.io/job-uid"
LABEL_TASK_TYPE = "kubemr.io/task-type"
LABEL_TASK_INDEX = "kubemr.io/task-index"
LABEL_ATTEMPT = "kubemr.io/attempt"
MANAGED_BY = "kubemr-operator"


def job_labels(job: str, uid: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "kubemr",
        "app.kubernetes.io/instance": job,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_JOB: job,
        LABEL_JOB_UID: uid,
    }

# Kubernetes' own node label of a node's zone (the seed's rack): blocks of a dataset are spread
# over zones, and a map task runs in its data's zone when not on its node.
LABEL_ZONE = "topology.kubernetes.io/zone"
