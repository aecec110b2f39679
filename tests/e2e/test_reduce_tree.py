"""A tree of reduces on the real cluster: combine pods level by level, exact output, and the
tree in the status, `kubemr describe` and the timeline."""

from __future__ import annotations

import pytest

from kubemr.scheduling.tree import ReduceTree
from tests.e2e.test_operator import corpus, job_manifest, new_bucket, output_counts, wait_for
from tests.e2e.test_sdk_cli import cli

pytestmark = pytest.mark.e2e


def test_a_word_count_through_a_tree_of_reduces_is_exact(cluster, ns, tmp_path):
    bucket = new_bucket()
    want = corpus(bucket, files=2, lines=200)
    cluster.apply(job_manifest("tree", ns, bucket, reduceTree={"fanIn": 2}))
    job = wait_for(cluster, ns, "tree", "Complete")
    assert output_counts(bucket) == want
    status = job["status"]
    maps = status["maps"]["total"]
    tree = ReduceTree(maps, 3, 2)
    assert tree.levels >= 2, f"{maps} map tasks make too small a tree to test"
    assert status["combinesDone"] == f"{tree.combines}/{tree.combines}"
    assert status["combines"]["levels"] == tree.levels
    assert status["attempts"] == maps + tree.combines + 3
    wide = cluster.kubectl("get", "mrj", "tree", "-n", ns, "-o", "wide").stdout
    assert "COMBINES" in wide and f"{tree.combines}/{tree.combines}" in wide
    pods = cluster.get_json("pods", "-n", ns, "-l", "kubemr.io/job=tree")["items"]
    kinds = [p["metadata"]["labels"]["kubemr.io/task-type"] for p in pods]
    assert kinds.count("combine") == tree.combines
    described = cli("describe", "tree", "-n", ns).stdout
    assert f"Combines:  {tree.combines}/{tree.combines} in {tree.levels} levels" in described
    assert "combine-0 (level 1)" in described
    assert f"(level {tree.levels})" in described
    page = tmp_path / "timeline.svg"
    cli("timeline", "tree", "-n", ns, "-o", str(page))
    assert "combine-0" in page.read_text()
