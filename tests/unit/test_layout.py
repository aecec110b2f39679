"""The repository layout: `operator/` must not shadow the standard library, CRD copies agree."""

import filecmp
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_import_operator_from_the_repo_root_is_the_standard_library():
    out = subprocess.check_output(
        [sys.executable, "-c", "import operator; print(operator.itemgetter.__module__)"],
        cwd=REPO, text=True)
    assert out.strip() == "operator"
    assert not os.path.exists(os.path.join(REPO, "operator", "__init__.py"))


def test_crd_copies_are_identical():
    source = os.path.join(REPO, "crds", "mapreducejob.yaml")
    copies = [os.path.join(REPO, "kubemr", "spec", "crd", "mapreducejob.yaml"),
              os.path.join(REPO, "charts", "kubemr", "crds", "mapreducejob.yaml")]
    for copy in copies:
        assert filecmp.cmp(source, copy, shallow=False), f"{copy} differs from {source}"


def test_the_import_boundaries_hold():
    """pyproject.toml's [tool.importlinter] contracts: the engine, scheduling, storage, spec and
    runtime import no Kubernetes; only the handlers import kopf; the worker starts light."""
    linter = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([linter, "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_kubectl_mr_is_the_kubemr_command():
    """`kubectl mr ...` (a kubectl plugin is any `kubectl-NAME` on PATH) runs the kubemr CLI."""
    import tomllib

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert scripts["kubectl-mr"] == scripts["kubemr"]
    prog = subprocess.check_output(
        [sys.executable, "-c", "import sys; sys.argv[0] = '/usr/local/bin/kubectl-mr'\n"
         f"from {scripts['kubemr'].split(':')[0]} import build_parser\n"
         "print(build_parser().prog)"], cwd=REPO, text=True)
    assert prog.strip() == "kubectl mr"
    installed = os.path.join(os.path.dirname(sys.executable), "kubectl-mr")
    if os.path.exists(os.path.join(os.path.dirname(sys.executable), "kubemr")):
        usage = subprocess.run([installed, "--help"], capture_output=True, text=True, check=True)
        assert usage.stdout.startswith("usage: kubectl mr"), usage.stdout
