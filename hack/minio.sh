#!/usr/bin/env bash
# Builds (once, cached by version) and runs a MinIO server for kubemr's tests.
#   hack/minio.sh build          print the path of the cached server binary, building it if needed
#   hack/minio.sh start DIR PORT start a server on 127.0.0.1:PORT with data in DIR; print its pid
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/versions.sh"   # MINIO_VERSION
CACHE="${KUBEMR_CACHE:-$HOME/.cache/kubemr}"
BIN="$CACHE/bin/minio-$MINIO_VERSION"

build() {
  if [[ ! -x "$BIN" ]]; then
    echo "building MinIO $MINIO_VERSION (a few minutes, once)" >&2
    local tmp
    tmp=$(mktemp -d)
    GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$MINIO_VERSION" >&2
    mkdir -p "$(dirname "$BIN")"
    mv "$tmp/minio" "$BIN"
    rmdir "$tmp"
  fi
  echo "$BIN"
}

start() {
  local dir=$1 port=$2
  build >/dev/null
  mkdir -p "$dir"
  MINIO_ROOT_USER="${MINIO_ROOT_USER:-kubemr}" MINIO_ROOT_PASSWORD="${MINIO_ROOT_PASSWORD:-kubemr-secret}" \
    MINIO_BROWSER=off MINIO_UPDATE=off \
    nohup "$BIN" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$((port + 1))" \
    "$dir/data" >"$dir/minio.log" 2>&1 &
  echo $!
}

case "${1:-}" in
  build) build ;;
  start) start "$2" "$3" ;;
  *) echo "usage: $0 build | start DIR PORT" >&2; exit 2 ;;
esac
