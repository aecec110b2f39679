#!/usr/bin/env bash
# The end-to-end part of CI: bring the cluster up, run the e2e tests, always
# bring it down. .ci/run calls this (or inlines the same lines).
#   bash hack/ci-cluster.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages the local cluster needs (idempotent, quick when installed).
if ! command -v containerd >/dev/null || ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null \
   || [[ ! -x /usr/lib/cni/bridge ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    containerd runc containernetworking-plugins iptables debootstrap docker.io conntrack >/dev/null
fi

trap 'hack/cluster.sh down || true' EXIT
if ! hack/cluster.sh up; then
  hack/cluster.sh logs 60 || true
  exit 1
fi
eval "$(hack/cluster.sh env)"
KUBEMR_E2E_REQUIRED=1 python3 -m pytest -m e2e tests/e2e "$@"
