"""Replicated datasets with local folders as nodes: put, the manifest, the planner's replicas
and tiers, reading past a lost replica, fsck and its repair."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
from kubemr_operator.config import Settings
from kubemr_operator.pods import LOCALITY_WEIGHT, ZONE_WEIGHT, build_task_pod
from kubemr_operator.reconcile import map_locality

from kubemr.client.cli import main
from kubemr.client.datasets import named_nodes, parse_size
from kubemr.engine.plan import plan_splits
from kubemr.errors import StorageError
from kubemr.runtime.local import run_local
from kubemr.storage import dataset
from kubemr.storage.dataset import Node, fsck, place, put, replica_order
from tests.conftest import make_job, read_output
from tests.unit.test_runner import WORDCOUNT


@pytest.fixture
def nodes(tmp_path) -> list[Node]:
    zones = {"n1": "a", "n2": "a", "n3": "b"}
    return [Node(name, f"file://{tmp_path}/nodes/{name}", zone) for name, zone in zones.items()]


@pytest.fixture
def books(tmp_path):
    """Two files whose lines cross 1 KiB block ends, and their word counts."""
    folder = tmp_path / "books"
    folder.mkdir()
    counts = Counter()
    for number in range(2):
        lines = [" ".join(chr(97 + (i * 7 + j) % 26) * 3 for j in range(i % 13 + 1))
                 for i in range(300 * (number + 1))]
        (folder / f"book{number}.txt").write_text("\n".join(lines) + "\n")
        counts.update(w for line in lines for w in line.split())
    return folder, counts


def word_count(tmp_path, input_uri: str) -> Counter:
    job = make_job(tmp_path, WORDCOUNT, input_uri, reducer="reducer", reducers=2)
    run_local(job, workers=2)
    return Counter({w: int(n) for w, n in
                    (line.split("\t") for line in read_output(str(tmp_path / "out")))})


def test_each_block_is_kept_on_distinct_nodes_of_both_zones(tmp_path, nodes, books):
    folder, _ = books
    manifest = put([str(folder)], str(tmp_path / "ds"), nodes, block_size=1024)
    sizes = {f["name"]: f["size"] for f in manifest["files"]}
    assert sizes == {p.name: p.stat().st_size for p in folder.iterdir()}
    blocks = [b for f in manifest["files"] for b in f["blocks"]]
    assert len(blocks) > 10 and manifest["replicas"] == 2  # two by default, with 3 nodes
    for block in blocks:
        holders = [r["node"] for r in block["replicas"]]
        assert len(set(holders)) == 2 and "n3" in holders  # n3 is zone b's only node
        for replica in block["replicas"]:
            data = dataset.store_for(replica["uri"]).read_bytes(replica["uri"])
            assert len(data) == block["size"]
    assert all(b["size"] == 1024 for f in manifest["files"] for b in f["blocks"][:-1])
    assert json.loads((tmp_path / "ds" / dataset.MANIFEST).read_text()) == manifest


def test_placement_turns_round_the_nodes_and_spreads_over_zones(nodes):
    firsts = Counter(place(nodes, 2, turn)[0].name for turn in range(30))
    assert firsts == {"n1": 10, "n2": 10, "n3": 10}
    assert all({n.zone for n in place(nodes, 2, turn)} == {"a", "b"} for turn in range(30))
    assert [n.name for n in place(nodes, 3, 1)] == ["n2", "n3", "n1"]


def test_a_job_reads_a_dataset_exactly_with_lines_across_blocks(tmp_path, nodes, books):
    folder, counts = books
    put([str(folder)], str(tmp_path / "ds"), nodes, block_size=1024)
    splits = plan_splits([str(tmp_path / "ds")], "text", 64 << 20)
    assert len(splits) == sum(-(-p.stat().st_size // 1024) for p in folder.iterdir())
    assert all(len(s.replicas) == 2 and s.node == s.replicas[0] for s in splits)
    assert word_count(tmp_path, str(tmp_path / "ds") + "/") == counts


def test_a_lost_node_s_blocks_are_read_from_another_replica(tmp_path, nodes, books):
    folder, counts = books
    put([str(folder)], str(tmp_path / "ds"), nodes, block_size=1024)
    shutil.rmtree(tmp_path / "nodes" / "n3")  # every block has a replica on n3
    assert word_count(tmp_path, str(tmp_path / "ds")) == counts


def test_a_block_with_no_replica_left_fails_as_storage_not_user_code(tmp_path, nodes, books):
    folder, _ = books
    put([str(folder)], str(tmp_path / "ds"), nodes, block_size=1024)
    block = dataset.load(str(tmp_path / "ds"))["files"][0]["blocks"][0]
    stream = dataset._BlocksStream([{**block, "replicas": [
        {"node": "gone", "uri": f"file://{tmp_path}/nowhere/b"}]}], 0, lambda r: r)
    with pytest.raises(StorageError, match="no replica of a block at byte 0 could be read"):
        stream.read()


def test_replicas_are_read_nearest_first():
    replicas = [{"node": "n3"}, {"node": "n2"}, {"node": "n1"}]
    zones = {"n1": "a", "n2": "a", "n3": "b"}
    assert [r["node"] for r in replica_order(replicas, "n1", zones)] == ["n1", "n2", "n3"]
    assert [r["node"] for r in replica_order(replicas, "n4", {**zones, "n4": "b"})] == \
        ["n3", "n2", "n1"]
    assert [r["node"] for r in replica_order(replicas, None, zones)] == ["n3", "n2", "n1"]


def test_fsck_reports_under_replicated_blocks_and_repair_restores_them(tmp_path, nodes, books):
    folder, counts = books
    put([str(folder)], str(tmp_path / "ds"), nodes, replicas=2, block_size=1024)
    assert fsck(str(tmp_path / "ds")).under_replicated == []
    shutil.rmtree(tmp_path / "nodes" / "n1")
    health = fsck(str(tmp_path / "ds"))
    on_n1 = [b for f in dataset.load(str(tmp_path / "ds"))["files"] for b in f["blocks"]
             if "n1" in {r["node"] for r in b["replicas"]}]
    assert len(health.under_replicated) == len(on_n1) > 0 and health.lost == []
    extra = Node("n4", f"file://{tmp_path}/nodes/n4", "a")
    repaired = fsck(str(tmp_path / "ds"), [*nodes[1:], extra], repair=True)
    assert repaired.repaired == len(on_n1)
    assert fsck(str(tmp_path / "ds")).under_replicated == []
    manifest = dataset.load(str(tmp_path / "ds"))
    assert all("n1" not in {r["node"] for r in b["replicas"]}
               for f in manifest["files"] for b in f["blocks"])
    shutil.rmtree(tmp_path / "nodes" / "n3")  # the repaired copies are read
    assert word_count(tmp_path, str(tmp_path / "ds")) == counts


def test_fsck_names_a_block_with_no_live_replica(tmp_path, nodes, books):
    folder, _ = books
    put([str(folder)], str(tmp_path / "ds"), nodes, replicas=1, block_size=1024)
    shutil.rmtree(tmp_path / "nodes" / "n2")
    health = fsck(str(tmp_path / "ds"), nodes, repair=True)
    assert health.lost and all(line.endswith("no live replica") for line in health.lost)


def test_the_cli_puts_and_checks_with_folders_as_nodes(tmp_path, books, capsys):
    folder, counts = books
    node_args = [a for n in ("n1", "n2") for a in ("--node", f"{n}={tmp_path}/{n}")]
    assert main(["put", str(folder), str(tmp_path / "ds"), "--block-size", "1Ki",
                 *node_args]) == 0
    assert "2 replicas each" in capsys.readouterr().out
    shutil.rmtree(tmp_path / "n2")
    assert main(["fsck", str(tmp_path / "ds")]) == 1
    assert "under-replicated" in capsys.readouterr().out
    assert main(["put", str(folder), str(tmp_path / "ds2"), "--replicas", "3",
                 *node_args]) == 2
    assert "--replicas 3 needs 1 to 2" in capsys.readouterr().err
    assert word_count(tmp_path, str(tmp_path / "ds")) == counts


def test_sizes_and_node_options_are_checked():
    assert parse_size("64Mi") == parse_size("64MiB") == 64 << 20
    assert parse_size("4096") == 4096
    with pytest.raises(Exception, match="not a size"):
        parse_size("64 furlongs")
    assert named_nodes(["a"], ["a=z1"]) == [Node("a", "s3://node-a", "z1")]
    with pytest.raises(Exception, match="which no --node names"):
        named_nodes(["a"], ["b=z1"])


def map_pod(locality: str, data_nodes, data_zones) -> dict:
    job = {"apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
           "metadata": {"name": "j", "namespace": "ns", "uid": "u" * 36},
           "spec": {"locality": locality}}
    task = {"type": "map", "index": 0, "attempt": 1, "work": "s3://w/x"}
    return build_task_pod(job=job, task=task, settings=Settings(), data_nodes=data_nodes,
                          data_zones=data_zones)["spec"].get("affinity", {}).get("nodeAffinity")


def test_a_map_pod_prefers_a_replica_s_node_then_its_zone():
    preferred = map_pod("preferred", ["n1", "n3"], ["a", "b"])[
        "preferredDuringSchedulingIgnoredDuringExecution"]
    assert [(t["weight"], t["preference"]["matchExpressions"][0]) for t in preferred] == [
        (LOCALITY_WEIGHT, {"key": "kubernetes.io/hostname", "operator": "In",
                           "values": ["n1", "n3"]}),
        (ZONE_WEIGHT, {"key": "topology.kubernetes.io/zone", "operator": "In",
                       "values": ["a", "b"]})]
    assert LOCALITY_WEIGHT > ZONE_WEIGHT
    required = map_pod("required", ["n1", "n3"], ["a"])
    assert required["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                               "values": ["n1", "n3"]}]}]
    assert map_pod("none", ["n1"], ["a"]) is None


def test_locality_counts_node_local_zone_local_and_remote_maps():
    zones = {"n1": "a", "n2": "a", "n3": "b"}
    ran = [(["n1", "n3"], "n3"), (["n1"], "n2"), (["n1"], "n3"), ([], "n1"),
           (["n1"], "n4"), (["n1"], None)]
    assert map_locality(ran, zones) == {"dataLocal": 1, "zoneLocal": 1, "remote": 4}
    assert map_locality([(["n1"], "n2")], {}) == {"dataLocal": 0, "zoneLocal": 0, "remote": 1}
