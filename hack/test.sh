#!/usr/bin/env bash
# The test command: installs kubemr into .venv, builds the tools the tests use (MinIO, actionlint;
# once, cached in ~/.cache/kubemr/bin) and runs the whole suite.
#   hack/test.sh            unit tests, MinIO tests and (with a cluster up) end-to-end tests
#   hack/test.sh -m "not e2e"   anything after the script name goes to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
hack/minio.sh build >/dev/null
hack/actionlint.sh build >/dev/null   # tests/unit/test_ci_workflow.py lints .github/workflows/
exec .venv/bin/python -m pytest "$@"
