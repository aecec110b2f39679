# Pinned versions of everything hack/cluster.sh builds. The binary cache
# (~/.cache/kubemr/bin/<name>-<version>) is keyed by these.
KUBE_VERSION="${KUBE_VERSION:-v1.34.10}"      # kube-* , kubelet, kubectl (1.35+ refuses cgroup v1)
ETCD_VERSION="${ETCD_VERSION:-v3.5.35}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.4}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"  # lints .github/workflows (tests/unit/test_ci_workflow.py)
KIND_VERSION="${KIND_VERSION:-v0.33.0}"      # the kind path, where no kind is on PATH (hack/lib/kind.sh)
