"""Replicated datasets on a real MinIO server, one bucket per "node" as with per-node servers:
a node whose server cannot be reached is read around, and fsck --repair restores its copies."""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter

import pytest

from kubemr.client.datasets import fsck, put
from kubemr.engine.formats import InputReader
from kubemr.engine.plan import plan_splits
from kubemr.storage.dataset import Node

pytestmark = pytest.mark.s3

DEAD_SERVER = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture
def nodes(minio, monkeypatch):
    run = uuid.uuid4().hex[:8]
    monkeypatch.setenv("KUBEMR_S3_BUCKET_ENDPOINTS", "{}")
    return [Node(f"n{i}-{run}", f"s3://node-n{i}-{run}") for i in range(1, 5)]


def lines(tmp_path) -> list[str]:
    text = "".join(f"line {i} {'x' * (i % 50)}\n" for i in range(2000))
    (tmp_path / "big.txt").write_text(text)
    return text.splitlines()


def read_all(dataset: str) -> Counter:
    return Counter(value for split in plan_splits([dataset], "text", 64 << 20)
                   for _, value in InputReader(split, "text"))


def unreachable(monkeypatch, node: Node) -> None:
    """The node's server is down: its bucket's endpoint answers nothing."""
    bucket = node.root.removeprefix("s3://")
    endpoints = json.loads(os.environ["KUBEMR_S3_BUCKET_ENDPOINTS"])
    monkeypatch.setenv("KUBEMR_S3_BUCKET_ENDPOINTS", json.dumps({**endpoints,
                                                                 bucket: DEAD_SERVER}))


def test_blocks_on_an_unreachable_server_are_read_from_another_replica(tmp_path, nodes,
                                                                       monkeypatch):
    want = lines(tmp_path)
    dataset = f"s3://datasets-{uuid.uuid4().hex[:8]}/big"
    manifest = put([str(tmp_path / "big.txt")], dataset, nodes=nodes[:3], block_size=4096)
    blocks = manifest["files"][0]["blocks"]
    assert len(blocks) > 10
    assert Counter(b["replicas"][0]["node"] for b in blocks).keys() == {n.name for n in nodes[:3]}
    unreachable(monkeypatch, nodes[0])
    assert read_all(dataset) == Counter(want)

    health = fsck(dataset, nodes=nodes[1:3])
    first_held = [b for b in blocks if nodes[0].name in {r["node"] for r in b["replicas"]}]
    assert len(health.under_replicated) == len(first_held) > 0 and not health.lost
    repaired = fsck(dataset, repair=True, nodes=nodes[1:])
    assert repaired.repaired == len(first_held)
    assert fsck(dataset, nodes=nodes[1:]).under_replicated == []
    unreachable(monkeypatch, nodes[1])  # two servers down: every block still has a replica
    assert read_all(dataset) == Counter(want)
