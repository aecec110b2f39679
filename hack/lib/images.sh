# Images without a registry. Each image is saved once as a docker-archive tar in
# $KUBEMR_CACHE/images/<name>-<key>.tar, the key hashing everything the image is
# made of; `up` imports the tars into every node's containerd (ctr import).
# A docker daemon (Debian's docker.io, own data-root, no bridge, no iptables)
# runs only while an image has to be built.

IMG_CACHE="$KUBEMR_CACHE/images"
DOCKER_RUN=/run/kubemr-docker
PAUSE_IMAGE=kubemr/pause:dev
BASE_IMAGE=kubemr/base-python:$DEBIAN_SUITE
MINIO_IMAGE=kubemr/minio:dev
KUBEMR_IMAGE=kubemr/kubemr:dev
# containerd's CRI names images fully
PAUSE_IMAGE_REF=docker.io/$PAUSE_IMAGE
MINIO_IMAGE_REF=docker.io/$MINIO_IMAGE
BASE_PACKAGES="python3,python3-pip,python3-venv,ca-certificates"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

_dk() { DOCKER_BUILDKIT=0 DOCKER_HOST="unix://$DOCKER_RUN/docker.sock" docker "$@"; }

_hash() { sha256sum | cut -c1-12; }

dockerd_up() {
  [[ -S "$DOCKER_RUN/docker.sock" ]] && _dk version >/dev/null 2>&1 && return 0
  command -v dockerd >/dev/null || die "dockerd missing: apt-get install -y docker.io"
  mkdir -p "$DOCKER_RUN" "$KUBEMR_CACHE/docker" "$KUBEMR_LOG_DIR"
  log "image builder: starting dockerd (data-root $KUBEMR_CACHE/docker, no bridge, no iptables)"
  setsid dockerd --data-root "$KUBEMR_CACHE/docker" --exec-root "$DOCKER_RUN/exec" \
    --pidfile "$DOCKER_RUN/dockerd.pid" -H "unix://$DOCKER_RUN/docker.sock" \
    --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --storage-driver=overlay2 >> "$KUBEMR_LOG_DIR/dockerd.log" 2>&1 < /dev/null 3>&- &
  local i
  for ((i = 0; i < 120; i++)); do _dk version >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "dockerd did not start (log: $KUBEMR_LOG_DIR/dockerd.log)"
}

dockerd_down() {
  [[ -f "$DOCKER_RUN/dockerd.pid" ]] || return 0
  local pid i; pid=$(cat "$DOCKER_RUN/dockerd.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  umount_under "$DOCKER_RUN" 2>/dev/null || true
  umount_under "$KUBEMR_CACHE/docker" 2>/dev/null || true
  rm -rf "$DOCKER_RUN"
  log "image builder: dockerd stopped"
}

_save() {  # _save TAG TAR; older tars of the same image are dropped from the cache
  _dk save -o "$2.tmp" "$1" && mv -f "$2.tmp" "$2"
  local prefix old; prefix=$(basename "$2"); prefix=${prefix%-*}
  for old in "$IMG_CACHE/$prefix"-*.tar; do
    [[ "$old" == "$2" || "$(basename "$old")" != "$prefix"-????????????.tar ]] || rm -f "$old"
  done
  log "image $1 saved ($(du -h "$2" | cut -f1))"
}

image_pause() {
  local key; key=$(cat "$HACK/images/pause/main.go" "$HACK/images/pause/Dockerfile" | _hash)
  local tar="$IMG_CACHE/pause-$key.tar"
  [[ -f "$tar" ]] || {
    log "image $PAUSE_IMAGE: building (static Go program)"
    dockerd_up
    local ctx; ctx=$(mktemp -d)
    (cd "$HACK/images/pause" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w" -o "$ctx/pause" .)
    cp "$HACK/images/pause/Dockerfile" "$ctx/"
    _dk build -q -t "$PAUSE_IMAGE" "$ctx" >/dev/null 2>>"$KUBEMR_LOG_DIR/build.log"
    rm -rf "$ctx"
    _save "$PAUSE_IMAGE" "$tar"
  }
  IMAGE_TARS+=("$tar")
}

base_key() { echo "$DEBIAN_SUITE $BASE_PACKAGES v2" | _hash; }

# The rootfs of the base image: debootstrap is network-bound, so a cold `up` runs it
# in the background while the Go builds keep the CPUs busy.
base_rootfs() { echo "$KUBEMR_CACHE/rootfs-$DEBIAN_SUITE-$(base_key)"; }

prepare_base_rootfs() {
  local root; root=$(base_rootfs)
  [[ -f "$root.done" ]] && return 0
  command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install -y debootstrap"
  rm -rf "$root"
  log "image $BASE_IMAGE: debootstrap --variant=minbase $DEBIAN_SUITE with $BASE_PACKAGES (a few minutes)"
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" \
      >> "$KUBEMR_LOG_DIR/debootstrap.log" 2>&1; then
    umount_under "$root"
    log "debootstrap failed (log: $KUBEMR_LOG_DIR/debootstrap.log)"
    return 1
  fi
  umount_under "$root"
  # Behave like the official python image: pip installs system-wide, `python` exists.
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
  ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/* "$root"/dev/*
  touch "$root.done"
  log "image $BASE_IMAGE: rootfs ready"
}

image_base() {
  local tar="$IMG_CACHE/base-python-$(base_key).tar"
  if [[ ! -f "$tar" ]]; then
    local root; root=$(base_rootfs)
    prepare_base_rootfs || die "debootstrap failed (log: $KUBEMR_LOG_DIR/debootstrap.log)"
    dockerd_up
    tar -C "$root" -c . | _dk import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$root" "$root.done"
    _save "$BASE_IMAGE" "$tar"
  fi
  BASE_TAR=$tar
  IMAGE_TARS+=("$tar")
}

_ensure_base_loaded() {
  dockerd_up
  _dk image inspect "$BASE_IMAGE" >/dev/null 2>&1 || _dk load -q -i "$BASE_TAR" >/dev/null
}

image_minio() {
  local bin="$KUBEMR_CACHE/bin/minio-$MINIO_VERSION"
  local key; key=$(echo "$MINIO_VERSION $(base_key) $(cat "$HACK/images/minio/Dockerfile")" | _hash)
  local tar="$IMG_CACHE/minio-$key.tar"
  [[ -f "$tar" ]] || {
    log "image $MINIO_IMAGE: building (MinIO $MINIO_VERSION on $BASE_IMAGE)"
    _ensure_base_loaded
    local ctx; ctx=$(mktemp -d)
    cp "$bin" "$ctx/minio"; cp "$HACK/images/minio/Dockerfile" "$ctx/"
    _dk build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$MINIO_IMAGE" "$ctx" >/dev/null 2>>"$KUBEMR_LOG_DIR/build.log"
    rm -rf "$ctx"
    _save "$MINIO_IMAGE" "$tar"
  }
  IMAGE_TARS+=("$tar")
}

# Stages the kubemr build context (repo layout) into $1; echoes nothing.
stage_kubemr_context() {
  local ctx=$1
  mkdir -p "$ctx/worker_image/wheels"
  cp "$KUBEMR_SRC/pyproject.toml" "$ctx/"
  if [[ -f "$KUBEMR_SRC/README.md" ]]; then cp "$KUBEMR_SRC/README.md" "$ctx/"; else echo "# kubemr" > "$ctx/README.md"; fi
  (cd "$KUBEMR_SRC" && tar --exclude=__pycache__ --exclude='*.egg-info' --exclude='*.so' -c kubemr operator) | tar -C "$ctx" -x
  cp "$REPO_ROOT/worker_image/Dockerfile" "$ctx/worker_image/"
}

# Builds kubemr's wheel (with its C module) and its dependencies' wheels on the host into the
# staged context's worker_image/wheels/; the image installs from there, with no index. Both
# paths (local and kind) build the kubemr image this way.
kubemr_wheelhouse() {
  local ctx=$1
  log "image $KUBEMR_IMAGE: wheelhouse on the host (pip wheel, with kubemr's C module)"
  python3 -m pip wheel -q --wheel-dir "$ctx/worker_image/wheels" "$ctx" >> "$KUBEMR_LOG_DIR/build.log" 2>&1 \
    || die "pip wheel failed (log: $KUBEMR_LOG_DIR/build.log)"
  # The image's Python is 3.11 (Debian bookworm's, or python:3.11-slim's): the wheel must be
  # built for it, C module included.
  compgen -G "$ctx/worker_image/wheels/kubemr-*-cp311-*.whl" >/dev/null \
    || die "no kubemr wheel for CPython 3.11 with its C module: build with a python3 3.11 that has gcc and its headers (log: $KUBEMR_LOG_DIR/build.log)"
}

kubemr_src_key() {
  (cd "$KUBEMR_SRC" && find pyproject.toml README.md kubemr operator -type f \
     ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -name '*.so' 2>/dev/null | LC_ALL=C sort | xargs cat 2>/dev/null
   cat "$REPO_ROOT/worker_image/Dockerfile"; base_key) | _hash
}

image_kubemr() {
  if [[ ! -f "$KUBEMR_SRC/pyproject.toml" || ! -d "$KUBEMR_SRC/kubemr" ]]; then
    log "image $KUBEMR_IMAGE: skipped (no pyproject.toml + kubemr/ in $KUBEMR_SRC; set KUBEMR_SRC)"
    return 0
  fi
  local tar="$IMG_CACHE/kubemr-$(kubemr_src_key).tar"
  [[ -f "$tar" ]] || {
    log "image $KUBEMR_IMAGE: building from worker_image/Dockerfile (source $KUBEMR_SRC)"
    local ctx; ctx=$(mktemp -d)
    stage_kubemr_context "$ctx"
    kubemr_wheelhouse "$ctx"
    _ensure_base_loaded
    _dk build -q -f "$ctx/worker_image/Dockerfile" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      --build-arg "PIP_INSTALL_ARGS=--no-index --find-links /tmp/wheels" \
      --build-arg KUBEMR_PACKAGE=kubemr -t "$KUBEMR_IMAGE" "$ctx" >> "$KUBEMR_LOG_DIR/build.log" 2>&1 \
      || die "docker build of $KUBEMR_IMAGE failed (log: $KUBEMR_LOG_DIR/build.log)"
    rm -rf "$ctx"
    _save "$KUBEMR_IMAGE" "$tar"
  }
  IMAGE_TARS+=("$tar")
}

build_images() {
  mkdir -p "$IMG_CACHE"
  IMAGE_TARS=()
  trap 'dockerd_down' EXIT   # also when a build dies
  image_pause
  image_base
  image_minio
  image_kubemr
  dockerd_down
  trap - EXIT
  log "images ready: ${IMAGE_TARS[*]##*/}"
}
