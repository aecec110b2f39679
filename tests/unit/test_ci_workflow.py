"""The GitHub Actions workflows: actionlint finds nothing, and the kind workflow keeps its cluster
steps in hack/cluster.sh (the kind path) instead of repeating them.

The workflows cannot run here (no registry, no GitHub), so they are linted: actionlint (pinned in
hack/lib/versions.sh, built once by hack/actionlint.sh, which hack/test.sh calls) checks their
syntax, expressions, action inputs and, with shellcheck on PATH, every `run:` script.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKFLOWS = os.path.join(REPO, ".github", "workflows")
KIND_WORKFLOW = os.path.join(WORKFLOWS, "e2e-kind.yaml")


def actionlint() -> str:
    """The cached actionlint binary, built by hack/actionlint.sh if it is not there yet."""
    script = os.path.join(REPO, "hack", "actionlint.sh")
    built = subprocess.run([script, "build"], capture_output=True, text=True, timeout=900)
    if built.returncode != 0:
        pytest.fail("actionlint is not built and hack/actionlint.sh could not build it (it needs "
                    "Go and the Go module proxy); run `hack/actionlint.sh build`:\n"
                    + built.stderr[-2000:])
    return built.stdout.strip()


def test_workflows_pass_actionlint():
    files = sorted(os.listdir(WORKFLOWS))
    assert files, f"no workflow in {WORKFLOWS}"
    result = subprocess.run([actionlint(), "-no-color"], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"actionlint findings:\n{result.stdout}{result.stderr}"


def _steps() -> tuple[dict, list[dict]]:
    with open(KIND_WORKFLOW, encoding="utf-8") as f:
        workflow = yaml.safe_load(f)
    (job,) = workflow["jobs"].values()
    return job, job["steps"]


def _runs(steps: list[dict]) -> str:
    return "\n".join(step.get("run", "") for step in steps)


def test_the_kind_workflow_brings_the_cluster_up_with_the_cluster_script():
    job, steps = _steps()
    assert job["env"]["KUBEMR_CLUSTER"] == "kind"
    runs = _runs(steps)
    assert "hack/cluster.sh up" in runs
    # The kind path's steps live in hack/lib/kind.sh only.
    for duplicated in ("kind create cluster", "kind load", "docker build"):
        assert duplicated not in runs, f"{duplicated!r} belongs in hack/lib/kind.sh"
    down = [s for s in steps if "hack/cluster.sh down" in s.get("run", "")]
    assert down and down[0].get("if") == "always()", "the cluster must come down even on failure"


def test_the_kind_workflow_installs_the_chart_and_runs_the_e2e_suite_required():
    job, steps = _steps()
    runs = _runs(steps)
    assert "helm install kubemr charts/kubemr" in runs
    assert "helm test kubemr" in runs
    assert "hack/test.sh -m e2e" in runs
    assert job["env"]["KUBEMR_E2E_REQUIRED"] == "1", "a missing cluster must fail, not skip"
    python = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert python and python[0]["with"]["python-version"] == "3.11", \
        "the image's Python is 3.11: the host builds kubemr's wheel for it"


def test_the_workflow_in_the_docs_passes_actionlint():
    """docs/ci-with-kind.md shows a workflow to copy: it must be as valid as ours."""
    with open(os.path.join(REPO, "docs", "ci-with-kind.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    workflows = [b for b in blocks if b.lstrip().startswith("name:") and "\njobs:" in b]
    assert workflows, "docs/ci-with-kind.md shows no workflow"
    for workflow in workflows:
        result = subprocess.run([actionlint(), "-no-color", "-stdin-filename",
                                 "docs/ci-with-kind.md", "-"], input=workflow, cwd=REPO,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"actionlint findings:\n{result.stdout}{result.stderr}"
