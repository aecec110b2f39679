"""The node <-> bucket mapping of per-node MinIO servers, in one place.

With `minioPerNode`, each worker node runs a MinIO server holding bucket `node-<node name>`;
a map task keeps its output on its own node's server. `servers` is the list the chart gives the
operator and the task pods (KUBEMR_NODE_SERVERS): [{"node", "bucket", "endpoint"}, ...].
"""

from __future__ import annotations

from kubemr.storage.base import split_uri


def bucket_of(node: str) -> str:
    """The bucket of a node's own server, as the chart names it."""
    return f"node-{node}"


def node_of(uri: str, servers: list[dict]) -> str | None:
    """The node whose server holds `uri`, if it is on a per-node server."""
    if not uri.startswith("s3://"):
        return None
    bucket = split_uri(uri)[1]
    return next((s["node"] for s in servers if s.get("bucket") == bucket), None)


def on_node(uri: str, node: str, servers: list[dict]) -> str:
    """`uri` moved to the same key on `node`'s own server (unchanged if it has none)."""
    bucket = next((s["bucket"] for s in servers if s.get("node") == node), None)
    if bucket is None or not uri.startswith("s3://"):
        return uri
    return f"s3://{bucket}/{split_uri(uri)[2]}"


def node_copies(uri: str, servers: list[dict]) -> list[str]:
    """The same key on every node's server."""
    if not uri.startswith("s3://"):
        return []
    return [f"s3://{s['bucket']}/{split_uri(uri)[2]}" for s in servers]


def within(uri: str, prefix: str, servers: list[dict]) -> bool:
    """Whether `uri` lies under `prefix`, or under the same key on a node's server. A name with
    a `.` or `..` segment lies under none: on a filesystem `..` leads out of the prefix."""
    if {".", ".."} & set(uri.split("/")):
        return False
    return any(uri.startswith(p + "/") for p in [prefix, *node_copies(prefix, servers)])
