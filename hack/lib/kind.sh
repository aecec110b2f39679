# The kind path: a machine with Docker and internet (a developer's laptop, a GitHub runner:
# .github/workflows/e2e-kind.yaml runs exactly these steps through `hack/cluster.sh up`).
# One control plane and 3 workers from kind-config.yaml, the kubemr image built with docker from
# a host-built wheelhouse (as on the local path) and loaded with `kind load docker-image`, MinIO
# deployed with the same manifests as the local path, and the service range routed through the
# control-plane node so the host reaches ClusterIPs as it does on the local path.
KIND_CLUSTER_NAME="${KIND_CLUSTER_NAME:-kubemr}"
KIND_SERVICE_CIDR="10.96.0.0/16"   # kind's default serviceSubnet (kind-config.yaml keeps it)
KIND_PYTHON_IMAGE="${KIND_PYTHON_IMAGE:-python:3.11-slim}"
KIND_MINIO_IMAGE="${KIND_MINIO_IMAGE:-minio/minio:latest}"

# kind and helm: the ones on PATH, else built once from the Go module proxy at the versions in
# hack/lib/versions.sh. kubectl comes from PATH (GitHub's runners have one).
kind_tools() {
  mkdir -p "$KUBEMR_CACHE/bin" "$CL/bin"
  KIND=${KIND:-$(command -v kind || true)}
  if [[ -z "$KIND" ]]; then
    command -v go >/dev/null || die "kind not found, and no go to build it (go install sigs.k8s.io/kind@$KIND_VERSION)"
    _go_install kind sigs.k8s.io/kind "$KIND_VERSION" || die "building kind $KIND_VERSION failed"
    KIND="$KUBEMR_CACHE/bin/kind-$KIND_VERSION"
  fi
  local helm; helm=$(command -v helm || true)
  if [[ -z "$helm" ]]; then
    command -v go >/dev/null || die "helm not found, and no go to build it"
    build_helm || die "building helm $HELM_VERSION failed"
    helm="$KUBEMR_CACHE/bin/helm-$HELM_VERSION"
  fi
  command -v kubectl >/dev/null || die "kubectl not found (the kind path uses the one on PATH)"
  ln -sfn "$KIND" "$CL/bin/kind"
  ln -sfn "$helm" "$CL/bin/helm"
  ln -sfn "$(command -v kubectl)" "$CL/bin/kubectl"
}

kind_build() {
  docker info >/dev/null 2>&1 || die "no working docker engine"
  mkdir -p "$KUBEMR_LOG_DIR"
  log "kind: building $KUBEMR_IMAGE from worker_image/Dockerfile (FROM $KIND_PYTHON_IMAGE)"
  local ctx; ctx=$(mktemp -d)
  stage_kubemr_context "$ctx"
  kubemr_wheelhouse "$ctx"
  docker build -q -f "$ctx/worker_image/Dockerfile" --build-arg "BASE_IMAGE=$KIND_PYTHON_IMAGE" \
    --build-arg "PIP_INSTALL_ARGS=--no-index --find-links /tmp/wheels" \
    --build-arg KUBEMR_PACKAGE=kubemr -t "$KUBEMR_IMAGE" "$ctx" >> "$KUBEMR_LOG_DIR/build.log" 2>&1 \
    || { rm -rf "$ctx"; die "docker build of $KUBEMR_IMAGE failed (log: $KUBEMR_LOG_DIR/build.log)"; }
  rm -rf "$ctx"
  log "kind: $MINIO_IMAGE = $KIND_MINIO_IMAGE retagged"
  docker pull -q "$KIND_MINIO_IMAGE" >/dev/null
  docker tag "$KIND_MINIO_IMAGE" "$MINIO_IMAGE"
  docker pull -q "$KIND_PYTHON_IMAGE" >/dev/null
  docker tag "$KIND_PYTHON_IMAGE" "$BASE_IMAGE"
}

# Runs a command as root: directly, or through sudo without a password (GitHub's runners).
_as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; elif sudo -n true 2>/dev/null; then sudo -n "$@"; else return 1; fi
}

# The host reaches ClusterIPs (the e2e tests read MinIO through them) through the control-plane
# node, whose kube-proxy forwards and masquerades them like any other incoming traffic.
kind_route_services() {
  local ip
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' \
    "$KIND_CLUSTER_NAME-control-plane")
  if _as_root ip route replace "$KIND_SERVICE_CIDR" via "$ip"; then
    log "kind: $KIND_SERVICE_CIDR routed via $KIND_CLUSTER_NAME-control-plane ($ip)"
  else
    log "kind: WARNING: not root and no sudo: the host cannot reach ClusterIPs (ip route add $KIND_SERVICE_CIDR via $ip)"
  fi
}

kind_up() {
  mkdir -p "$CL" "$KUBEMR_LOG_DIR"
  echo kind > "$CL/mode"
  kind_tools
  if ! "$KIND" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME"; then
    log "kind: creating cluster $KIND_CLUSTER_NAME from kind-config.yaml"
    "$KIND" create cluster --name "$KIND_CLUSTER_NAME" --config "$REPO_ROOT/kind-config.yaml" \
      --kubeconfig "$CL/kubeconfig" --wait 300s
  else
    "$KIND" get kubeconfig --name "$KIND_CLUSTER_NAME" > "$CL/kubeconfig"
  fi
  kind_build
  local img
  for img in "$KUBEMR_IMAGE" "$MINIO_IMAGE" "$BASE_IMAGE"; do
    log "kind: loading $img into every node"
    "$KIND" load docker-image --name "$KIND_CLUSTER_NAME" "$img"
  done
  local n
  for n in $(kctl get nodes -l kubemr.io/role=worker -o name); do
    kctl label "$n" node-role.kubernetes.io/worker= --overwrite >/dev/null
  done
  kind_route_services
  deploy_minio
  kctl get nodes -o wide >&2
  log "cluster up. export KUBECONFIG=$CL/kubeconfig   (or: eval \"\$(hack/cluster.sh env)\")"
}

kind_down() {
  local kind_bin; kind_bin=$(command -v kind || echo "$CL/bin/kind")
  "$kind_bin" delete cluster --name "$KIND_CLUSTER_NAME" || true
  if ip route show "$KIND_SERVICE_CIDR" 2>/dev/null | grep -q via; then
    _as_root ip route del "$KIND_SERVICE_CIDR" || true
  fi
  rm -f "$CL/mode"
}

kind_status() {
  echo "mode: kind   kubeconfig: $CL/kubeconfig"
  local kind_bin; kind_bin=$(command -v kind || echo "$CL/bin/kind")
  "$kind_bin" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME" || { echo "  no kind cluster $KIND_CLUSTER_NAME"; return 0; }
  kctl get nodes -o wide
  kctl -n kubemr-system get pods,svc -o wide 2>/dev/null || true
}
