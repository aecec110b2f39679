"""`kubemr put` and `kubemr fsck` (and the SDK's kubemr.put and kubemr.fsck): replicated
datasets (kubemr.storage.dataset) on the cluster's nodes, or on nodes named by hand."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable

from kubemr.errors import KubemrError
from kubemr.storage.dataset import DEFAULT_BLOCK_SIZE, Health, Node
from kubemr.storage.dataset import fsck as check_dataset
from kubemr.storage.dataset import put as put_dataset

UNITS = {"": 1, "k": 1 << 10, "ki": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mi": 1 << 20,
         "mib": 1 << 20, "g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30}


def parse_size(text: str) -> int:
    """Bytes from `67108864`, `64Mi`, `64MiB` or `1G` (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in UNITS:
        raise KubemrError(f"{text!r} is not a size: write bytes, or e.g. 64Mi, 1Gi")
    return int(match.group(1)) * UNITS[match.group(2).lower()]


def cluster_nodes() -> list[Node]:
    """The cluster's Ready nodes that run a MinIO server of their own (bucket `node-NAME`,
    reached through KUBEMR_S3_BUCKET_ENDPOINTS), with their zones."""
    from kubemr.client.cluster import Cluster
    from kubemr.storage.nodes import bucket_of

    endpoints = json.loads(os.environ.get("KUBEMR_S3_BUCKET_ENDPOINTS") or "{}")
    nodes = [Node(name, f"s3://{bucket_of(name)}", zone)
             for name, zone in Cluster().ready_nodes() if bucket_of(name) in endpoints]
    if not nodes:
        raise KubemrError("no node of the cluster has a MinIO server this machine can reach: "
                          "set KUBEMR_S3_BUCKET_ENDPOINTS ({\"node-NAME\": \"http://...\"}) or "
                          "name the nodes with --node NAME=URI")
    return nodes


def named_nodes(specs: Iterable[str], zones: Iterable[str] = ()) -> list[Node]:
    """Nodes from `--node NAME=URI` (URI: where the node keeps blocks, s3:// or a folder;
    `--node NAME` alone: s3://node-NAME) and `--zone NAME=ZONE`."""
    from kubemr.storage import normalize_uri
    from kubemr.storage.nodes import bucket_of

    zone_of = {}
    for spec in zones:
        name, sep, zone = spec.partition("=")
        if not sep or not name or not zone:
            raise KubemrError(f"--zone {spec!r}: write --zone NODE=ZONE")
        zone_of[name] = zone
    nodes = []
    for spec in specs:
        name, sep, root = spec.partition("=")
        if not name:
            raise KubemrError(f"--node {spec!r}: write --node NAME or --node NAME=URI")
        nodes.append(Node(name, normalize_uri(root) if sep else f"s3://{bucket_of(name)}",
                          zone_of.get(name)))
    unknown = set(zone_of) - {n.name for n in nodes}
    if unknown:
        raise KubemrError(f"--zone names {sorted(unknown)[0]}, which no --node names")
    return nodes


def put(paths: str | Iterable[str], dataset: str, *, replicas: int | None = None,
        block_size: int | str = DEFAULT_BLOCK_SIZE, nodes: list[Node] | None = None) -> dict:
    """Store local files (or folders) as a replicated dataset at `dataset` (e.g.
    `s3://datasets/books`), which a job then names as its input; returns the manifest.
    `nodes` default to the cluster's nodes that run a MinIO server."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    return put_dataset(paths, dataset, nodes or cluster_nodes(), replicas,
                       parse_size(block_size) if isinstance(block_size, str) else block_size)


def fsck(dataset: str, *, repair: bool = False, nodes: list[Node] | None = None) -> Health:
    """The dataset's blocks with fewer live replicas than it asks for; with `repair`, copied
    from a live replica onto other nodes (default: the cluster's)."""
    return check_dataset(dataset, (nodes or cluster_nodes()) if repair else nodes, repair)
