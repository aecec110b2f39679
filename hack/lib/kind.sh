# The kind path: a machine with Docker and internet. One control plane and 3
# workers from kind-config.yaml, images built with docker and loaded with
# `kind load docker-image`, MinIO deployed with the same manifests as the local path.
KIND_CLUSTER_NAME="${KIND_CLUSTER_NAME:-kubemr}"

kind_build() {
  command -v kind >/dev/null || die "kind not found"
  docker info >/dev/null 2>&1 || die "no working docker engine"
  log "kind: building $KUBEMR_IMAGE from worker_image/Dockerfile (FROM python:3.11-slim)"
  docker build -f "$REPO_ROOT/worker_image/Dockerfile" -t "$KUBEMR_IMAGE" "$KUBEMR_SRC"
  log "kind: $MINIO_IMAGE = minio/minio:latest retagged"
  docker pull -q minio/minio:latest >/dev/null
  docker tag minio/minio:latest "$MINIO_IMAGE"
  docker pull -q python:3.11-slim >/dev/null
  docker tag python:3.11-slim "$BASE_IMAGE"
}

kind_up() {
  mkdir -p "$CL" "$KUBEMR_LOG_DIR"
  echo kind > "$CL/mode"
  if ! kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME"; then
    log "kind: creating cluster $KIND_CLUSTER_NAME from kind-config.yaml"
    kind create cluster --name "$KIND_CLUSTER_NAME" --config "$REPO_ROOT/kind-config.yaml" \
      --kubeconfig "$CL/kubeconfig" --wait 300s
  else
    kind get kubeconfig --name "$KIND_CLUSTER_NAME" > "$CL/kubeconfig"
  fi
  kind_build
  local img
  for img in "$KUBEMR_IMAGE" "$MINIO_IMAGE" "$BASE_IMAGE"; do
    log "kind: loading $img into every node"
    kind load docker-image --name "$KIND_CLUSTER_NAME" "$img"
  done
  mkdir -p "$CL/bin"
  command -v kubectl >/dev/null || die "kubectl not found (the kind path uses the one on PATH)"
  ln -sfn "$(command -v kubectl)" "$CL/bin/kubectl"
  local n
  for n in $(kctl get nodes -l kubemr.io/role=worker -o name); do
    kctl label "$n" node-role.kubernetes.io/worker= --overwrite >/dev/null
  done
  deploy_minio
  kctl get nodes -o wide >&2
  log "cluster up. export KUBECONFIG=$CL/kubeconfig"
}

kind_down() {
  kind delete cluster --name "$KIND_CLUSTER_NAME" || true
  rm -f "$CL/mode"
}

kind_status() {
  echo "mode: kind   kubeconfig: $CL/kubeconfig"
  kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME" || { echo "  no kind cluster $KIND_CLUSTER_NAME"; return 0; }
  kctl get nodes -o wide
  kctl -n kubemr-system get pods,svc -o wide 2>/dev/null || true
}
