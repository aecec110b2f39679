"""Replicated datasets: files cut into blocks, each block kept on several nodes' stores, named
by one small manifest (HDFS's blocks and NameNode, as a JSON object).

    kubemr put books/*.txt s3://datasets/books

writes each file's blocks to `replicas` nodes' stores and then, last, the manifest
`s3://datasets/books/_KUBEMR_DATASET`; a dataset half written has no manifest, so no job reads
it. A job names the dataset as its input like any prefix (`input.uri: s3://datasets/books/`):
the planner finds the manifest there and cuts one split per block, each knowing every node that
holds a replica (kubemr.engine.plan).

    {"kind": "kubemr.io/dataset", "version": 1, "blockSize": 67108864, "replicas": 2,
     "files": [{"name": "a.txt", "size": 100,
                "blocks": [{"offset": 0, "size": 100,
                            "replicas": [{"node": "n1", "uri": "s3://node-n1/..."}, ...]}]}]}

A node is a name, the root URI of its store (`s3://node-NAME` with per-node MinIO servers, or a
folder for the local runner and tests) and optionally its zone (topology.kubernetes.io/zone,
the seed's rack). Blocks are cut anywhere: a line crossing a block's end is read on into the
next block, as a split's last line is read past its end.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from kubemr.errors import StorageError, StorageUnavailable
from kubemr.storage import StreamWrapper, join, normalize_uri, store_for

MANIFEST = "_KUBEMR_DATASET"
KIND = "kubemr.io/dataset"
DEFAULT_BLOCK_SIZE = 64 << 20
MIN_BLOCK_SIZE = 1024


@dataclass(frozen=True)
class Node:
    """A node that can hold blocks: its name, its store's root URI, and its zone."""

    name: str
    root: str
    zone: str | None = None


def manifest_uri(dataset_uri: str) -> str:
    return join(normalize_uri(dataset_uri), MANIFEST)


def is_manifest(uri: str) -> bool:
    return uri.rstrip("/").rsplit("/", 1)[-1] == MANIFEST


def load(uri: str) -> dict:
    """The manifest at `uri` (a dataset's prefix or its manifest)."""
    uri = uri if is_manifest(uri) else manifest_uri(uri)
    try:
        manifest = json.loads(store_for(uri).read_bytes(uri))
    except ValueError as e:
        raise StorageError(f"{uri} is not a kubemr dataset manifest: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise StorageError(f"{uri} is not a kubemr dataset manifest")
    return manifest


def place(nodes: list[Node], replicas: int, turn: int) -> list[Node]:
    """The nodes that keep block number `turn`: `replicas` distinct nodes, starting from a
    different node each turn (so blocks spread evenly), each next one in a zone not used yet
    while there is one (so a zone lost loses no block)."""
    ring = nodes[turn % len(nodes):] + nodes[:turn % len(nodes)]
    chosen: list[Node] = []
    while len(chosen) < min(replicas, len(nodes)):
        zones = {n.zone for n in chosen}
        rest = [n for n in ring if n not in chosen]
        chosen.append(next((n for n in rest if n.zone not in zones), rest[0]))
    return chosen


def default_replicas(nodes: list[Node]) -> int:
    return 2 if len(nodes) >= 2 else 1


def put(paths: Iterable[str], dataset_uri: str, nodes: list[Node], replicas: int | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE) -> dict:
    """Store local files as a dataset at `dataset_uri`; returns its manifest.

    Each file is cut into blocks of `block_size` bytes (the last one shorter), each block
    written to `replicas` nodes (default 2 when there are 2 or more); the manifest is written
    last, replacing any earlier one at once."""
    if not nodes:
        raise StorageError("kubemr put: no nodes to keep the blocks on")
    if len({n.name for n in nodes}) != len(nodes):
        raise StorageError("kubemr put: a node is named twice")
    replicas = default_replicas(nodes) if replicas is None else replicas
    if not 1 <= replicas <= len(nodes):
        raise StorageError(f"kubemr put: --replicas {replicas} needs 1 to {len(nodes)} "
                           f"(there are {len(nodes)} nodes)")
    if block_size < MIN_BLOCK_SIZE:
        raise StorageError(f"kubemr put: --block-size must be at least {MIN_BLOCK_SIZE}")
    dataset_uri = normalize_uri(dataset_uri).rstrip("/")
    files = _local_files(paths)
    blocks_prefix = _blocks_prefix(dataset_uri)
    turn = 0
    entries = []
    for name, path in files:
        blocks = []
        with open(path, "rb") as f:
            offset = 0
            while True:
                data = f.read(block_size)
                if not data and offset:
                    break
                replicas_of = []
                for node in place(nodes, replicas, turn):
                    uri = join(node.root, blocks_prefix, f"{len(entries):05d}-{len(blocks):06d}")
                    store_for(uri).write_bytes(uri, data)
                    replicas_of.append({"node": node.name, "uri": uri})
                blocks.append({"offset": offset, "size": len(data), "replicas": replicas_of})
                turn += 1
                offset += len(data)
                if len(data) < block_size:
                    break
        entries.append({"name": name, "size": offset, "blocks": blocks})
    manifest = {"kind": KIND, "version": 1, "blockSize": block_size, "replicas": replicas,
                "zones": {n.name: n.zone for n in nodes if n.zone}, "files": entries}
    uri = manifest_uri(dataset_uri)
    store_for(uri).write_bytes(uri, json.dumps(manifest, indent=1).encode())
    return manifest


def _blocks_prefix(dataset_uri: str) -> str:
    """Where a put keeps its blocks under each node's root: the dataset's own path and a new
    name per put, so a put never overwrites blocks an earlier manifest names."""
    path = dataset_uri.split("://", 1)[1].strip("/")
    return join("_blocks", path, uuid.uuid4().hex[:12])


def _local_files(paths: Iterable[str]) -> list[tuple[str, str]]:
    """(name in the dataset, local path): a file by its base name, a folder's files by their
    path under it."""
    files = []
    for path in paths:
        path = os.path.expanduser(path)
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    full = os.path.join(root, name)
                    files.append((os.path.relpath(full, path), full))
        elif os.path.isfile(path):
            files.append((os.path.basename(path), path))
        else:
            raise StorageError(f"kubemr put: no such file or folder: {path}")
    names = [name for name, _ in files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise StorageError(f"kubemr put: two files would be named {twice[0]} in the dataset")
    if not files:
        raise StorageError("kubemr put: no files to store")
    return files


# -- reading ---------------------------------------------------------------------------------


_unreachable: set[str] = set()  # nodes whose store failed a read in this process


def replica_order(replicas: list[dict], here: str | None, zones: dict[str, str]) -> list[dict]:
    """The replicas nearest first: this node's own, then its zone's, then the rest; a node
    that has failed a read already comes last."""
    zone = zones.get(here) if here else None

    def distance(replica: dict) -> tuple[bool, int]:
        node = replica["node"]
        if here and node == here:
            nearness = 0
        else:
            nearness = 1 if zone and zones.get(node) == zone else 2
        return node in _unreachable, nearness

    return sorted(replicas, key=distance)


def open_file(manifest: str, name: str, start: int) -> BinaryIO:
    """A stream of file `name`'s bytes from `start` to its end, block after block, each read
    from its nearest replica that answers."""
    dataset = load(manifest)  # once per map task: a task reads one block's split
    entry = next((f for f in dataset["files"] if f["name"] == name), None)
    if entry is None:
        raise StorageError(f"dataset {manifest} has no file {name}")
    here = os.environ.get("KUBEMR_NODE_NAME")
    return _BlocksStream(entry["blocks"], start,
                         lambda replicas: replica_order(replicas, here, dataset.get("zones", {})))


class _BlocksStream(StreamWrapper):
    """The bytes of consecutive blocks as one stream. A replica that cannot be opened or read
    (its node's store unreachable, the block gone) is left for the next, at the same byte."""

    def __init__(self, blocks: list[dict], start: int,
                 nearest: Callable[[list[dict]], list[dict]]):
        super().__init__(None)
        self._current: dict | None = None
        self._blocks = [b for b in blocks if b["offset"] + b["size"] > start]
        self._pos = start
        self._nearest = nearest

    def read(self, n: int = -1) -> bytes:
        chunks = []
        while self._blocks and (n < 0 or n > 0):
            data = self._read_block(n)
            if not data:
                self._close_block()
                self._blocks.pop(0)
                continue
            chunks.append(data)
            if n > 0:
                n -= len(data)
        return b"".join(chunks)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def _read_block(self, n: int) -> bytes:
        block = self._blocks[0]
        left = block["offset"] + block["size"] - self._pos
        if left <= 0:
            return b""
        want = left if n < 0 else min(n, left)
        tried: list[str] = []
        for replica in [*([self._current] if self._stream else []),
                        *self._nearest(block["replicas"])]:
            if replica["uri"] in tried:
                continue
            try:
                if self._stream is None or replica is not self._current:
                    self._close_block()
                    self._current = replica
                    self._stream = store_for(replica["uri"]).open_range(
                        replica["uri"], self._pos - block["offset"], block["size"])
                data = self._stream.read(want)
                if not data:
                    raise StorageError(f"{replica['uri']} ends early")
                self._pos += len(data)
                return data
            except Exception as e:
                # StorageError, or the S3 client's own errors on a connection that broke
                if not isinstance(e, StorageError | OSError) and \
                        type(e).__module__.split(".")[0] not in ("urllib3", "http"):
                    raise
                if isinstance(e, StorageUnavailable | OSError) or \
                        not isinstance(e, StorageError):
                    _unreachable.add(replica["node"])
                tried.append(replica["uri"])
                self._close_block()
                last = e
        raise StorageUnavailable(f"no replica of a block at byte {block['offset']} could be "
                                 f"read ({', '.join(tried)}): {last}")

    def _close_block(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:
                pass
        self._stream = None

    def close(self) -> None:
        self._close_block()


# -- checking and repairing ------------------------------------------------------------------


@dataclass
class Health:
    blocks: int
    under_replicated: list[str]  # "file#block: 1 of 2 replicas live"
    lost: list[str]  # blocks with no live replica
    repaired: int = 0


def fsck(dataset_uri: str, nodes: list[Node] | None = None, repair: bool = False,
         live: Callable[[dict], bool] | None = None) -> Health:
    """Which blocks have fewer live replicas than the dataset asks for; with `repair`, copy
    each such block from a live replica to nodes that lack it (from `nodes`), and write the
    manifest again naming the live replicas and the new ones."""
    uri = manifest_uri(dataset_uri)
    manifest = load(uri)
    live = live or _replica_readable
    want = manifest["replicas"]
    health = Health(blocks=0, under_replicated=[], lost=[])
    for entry in manifest["files"]:
        for number, block in enumerate(entry["blocks"]):
            health.blocks += 1
            alive = [r for r in block["replicas"] if live(r)]
            where = f"{entry['name']}#{number}"
            if len(alive) >= want:
                continue
            if not alive:
                health.lost.append(f"{where}: no live replica")
                continue
            health.under_replicated.append(f"{where}: {len(alive)} of {want} replicas live")
            if repair:
                block["replicas"] = alive + _copies(alive, nodes or [], want - len(alive))
                health.repaired += len(block["replicas"]) > len(alive)
    if repair and health.repaired:
        manifest["zones"] = {**manifest.get("zones", {}),
                             **{n.name: n.zone for n in nodes or [] if n.zone}}
        store_for(uri).write_bytes(uri, json.dumps(manifest, indent=1).encode())
    return health


def _replica_readable(replica: dict) -> bool:
    try:
        return store_for(replica["uri"]).exists(replica["uri"])
    except StorageError:
        return False


def _copies(alive: list[dict], nodes: list[Node], missing: int) -> list[dict]:
    """`missing` new replicas of a block, copied from a live one onto nodes that hold none,
    in a zone not yet holding one where there is such a node."""
    holders = {r["node"] for r in alive}
    zones = {n.zone for n in nodes if n.name in holders}
    candidates = sorted((n for n in nodes if n.name not in holders),
                        key=lambda n: (n.zone in zones, n.name))
    source = alive[0]["uri"]
    data = store_for(source).read_bytes(source)
    made = []
    for node in candidates[:missing]:
        uri = join(node.root, "_blocks", source.split("/_blocks/", 1)[1])
        try:
            store_for(uri).write_bytes(uri, data)
        except StorageUnavailable:
            continue
        made.append({"node": node.name, "uri": uri})
    return made
