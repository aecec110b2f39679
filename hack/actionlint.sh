#!/usr/bin/env bash
# actionlint, the linter of kubemr's GitHub Actions workflows, built once from the Go module
# proxy and cached by version like the other tools in hack/ (pinned in hack/lib/versions.sh).
#   hack/actionlint.sh build      print the path of the cached binary, building it if needed
#   hack/actionlint.sh [ARGS...]  run it (from the repository root: lints .github/workflows/)
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HACK/lib/versions.sh"
CACHE="${KUBEMR_CACHE:-$HOME/.cache/kubemr}"
BIN="$CACHE/bin/actionlint-$ACTIONLINT_VERSION"

build() {
  if [[ ! -x "$BIN" ]]; then
    command -v go >/dev/null || { echo "actionlint: go not found (needed once to build it)" >&2; exit 1; }
    echo "building actionlint $ACTIONLINT_VERSION (once)" >&2
    local tmp
    tmp=$(mktemp -d)
    GOBIN="$tmp" GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
      go install -trimpath -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >&2
    mkdir -p "$(dirname "$BIN")"
    mv "$tmp/actionlint" "$BIN"
    rmdir "$tmp"
  fi
  echo "$BIN"
}

case "${1:-}" in
  build) build ;;
  *) build >/dev/null; cd "$HACK/.." && exec "$BIN" "$@" ;;
esac
