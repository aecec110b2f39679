"""Plan the map tasks: list the input objects, cut large ones into byte-range splits and pack
small ones together, keeping each split on one node's server; a replicated dataset's blocks are
one split each, knowing every node that holds the block (kubemr.storage.dataset)."""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import asdict, dataclass

from kubemr.errors import ManifestError, StorageError
from kubemr.storage import ObjectInfo, dataset, normalize_uri, store_for
from kubemr.storage.nodes import node_of

GLOB_CHARS = "*?["
SLACK = 0.1  # a split may run this share past splitSize rather than leave a sliver for another
MIN_PACKED = 16 << 20  # packed splits are not made smaller than this to fill a wave of tasks
MAX_SPLITS = 100_000  # map tasks a job may plan: bounds the planner's memory and time
MAX_PARTS = 1_000_000  # input objects a job may name
INLINE_BYTES = 16 << 10  # a split larger than this as JSON is kept in the store, not the task


@dataclass(frozen=True, slots=True)
class Part:
    """Bytes [start, end) of one input object of `size` bytes, listed under the input prefix
    `base`."""

    uri: str
    start: int
    end: int
    size: int
    base: str
    dataset: str | None = None  # the manifest of the dataset `uri` is a file of

    @property
    def name(self) -> str:
        """The object's name under its input prefix (a whole-file record's key)."""
        return self.uri[len(self.base):] or self.uri.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Split:
    """One map task's input: byte ranges of one or more objects, all on `node`'s server (None:
    not on a per-node server).

    A large object is cut into splits of one part each; objects smaller than the split size are
    packed, whole, into splits of up to `splitSize` bytes (Hadoop's CombineFileInputFormat).
    """

    parts: tuple[Part, ...]
    node: str | None = None
    replicas: tuple[str, ...] = ()  # every node holding the data, `node` first (datasets)

    @classmethod
    def of(cls, uri: str, start: int, end: int, size: int, base: str,
           node: str | None = None) -> Split:
        """A split of one part."""
        return cls((Part(uri, start, end, size, base),), node)

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes holding the split's data: where its map task is best run."""
        return self.replicas or ((self.node,) if self.node else ())

    @property
    def length(self) -> int:
        return sum(p.end - p.start for p in self.parts)

    def to_dict(self) -> dict:
        parts = [{k: v for k, v in asdict(p).items() if k != "dataset" or v}
                 for p in self.parts]
        return {"node": self.node, "parts": parts,
                **({"replicas": list(self.replicas)} if self.replicas else {})}

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        """From to_dict(); also from the one-range form plans had before splits were combined
        ({uri, start, end, size, base}), so a job planned by an earlier operator still runs."""
        if "parts" not in d:
            return cls.of(d["uri"], d["start"], d["end"], d["size"], d["base"])
        return cls(tuple(Part(**p) for p in d["parts"]), d.get("node"),
                   tuple(d.get("replicas", ())))


def _hidden(uri: str, base: str) -> bool:
    relative = uri[len(base):] if uri.startswith(base) else uri.rsplit("/", 1)[-1]
    return any(part.startswith(("_", ".")) for part in relative.split("/") if part)


def list_input(uri: str) -> tuple[str, list[ObjectInfo]]:
    """The base prefix and the objects an input URI names: a prefix, an object, or a glob."""
    uri = normalize_uri(uri)
    store = store_for(uri)
    if any(c in uri for c in GLOB_CHARS):
        first_glob = min(uri.index(c) for c in GLOB_CHARS if c in uri)
        base = uri[: uri.rindex("/", 0, first_glob) + 1]
        found = [o for o in store.list(base) if fnmatch.fnmatchcase(o.uri, uri)]
    elif uri.endswith("/"):
        base, found = uri, store.list(uri)
    else:
        listed = store.list(uri)
        exact = [o for o in listed if o.uri == uri]
        if exact:
            return uri.rsplit("/", 1)[0] + "/", exact
        base, found = uri + "/", [o for o in listed if o.uri.startswith(uri + "/")]
    manifest = base + dataset.MANIFEST
    if any(o.uri == manifest for o in found):  # a dataset (kubemr put): named by its manifest
        return base, [next(o for o in found if o.uri == manifest)]
    return base, [o for o in found if not _hidden(o.uri, base)]


def plan_splits(uris: list[str], input_format: str, split_size: int,
                max_splits: int = MAX_SPLITS, servers: list[dict] | None = None,
                parallelism: int = 1) -> list[Split]:
    """The map tasks over the objects `uris` name, as cut_splits() cuts them. `servers` are the
    per-node MinIO servers (kubemr.storage.nodes): objects are packed only with others on the
    same node's server. `parallelism`: how many map tasks will run at once."""
    inputs, datasets = [], []
    for uri in uris:
        base, objects = list_input(uri)
        if objects and dataset.is_manifest(objects[0].uri):
            datasets.append(objects[0].uri)
            continue
        if not objects:
            raise StorageError(f"input {uri} matches no files")
        inputs.append((base, objects))
    splits = cut_splits(inputs, input_format, split_size, servers or [], max_splits,
                        parallelism)
    for manifest in datasets:
        splits += block_splits(manifest)
        if len(splits) > max_splits:
            raise ManifestError(f"the input has more than {max_splits} blocks: put the "
                                "dataset again with a larger --block-size")
    return splits


def block_splits(manifest_uri: str) -> list[Split]:
    """One split per block of a dataset, naming every node that holds a replica. A block's
    split reads on into the next block for the line that crosses its end, as any split does."""
    manifest = dataset.load(manifest_uri)
    base = manifest_uri[: -len(dataset.MANIFEST)]
    splits = []
    for entry in manifest["files"]:
        uri = base + entry["name"]
        for block in entry["blocks"]:
            nodes = tuple(r["node"] for r in block["replicas"])
            part = Part(uri, block["offset"], block["offset"] + block["size"], entry["size"],
                        base, manifest_uri)
            splits.append(Split((part,), nodes[0] if nodes else None, nodes))
    return splits


def cut_splits(inputs: list[tuple[str, list[ObjectInfo]]], input_format: str, split_size: int,
               servers: list[dict], max_splits: int = MAX_SPLITS,
               parallelism: int = 1) -> list[Split]:
    """The map tasks over (base, objects) pairs; refused, before any is made, when there would
    be more than max_splits, or more than MAX_PARTS objects.

    An object of at least `split_size` bytes is cut into byte ranges of `split_size` (a small
    tail joins the range before it), one split each; one that cannot be cut (whole-file format,
    `.gz`) is one split. Smaller objects are packed whole, in listing order, into splits of at
    most `split_size` bytes (or SLACK more: 8 files of just over 16 MiB are 2 splits of 64 MiB,
    not 3 with a sliver), each holding objects on one node's server (kubemr.storage.nodes:
    `servers`; objects on no per-node server pack together). The packed splits are of even
    sizes, and as many as the job's `parallelism` runs in even waves where there is enough
    data (see pack_counts): 3 full splits on 2 workers would leave one idle for a third of
    the job.
    """
    if sum(len(objects) for _, objects in inputs) > MAX_PARTS:
        raise ManifestError(f"the input holds more than {MAX_PARTS} files: name fewer, or "
                            "combine them into larger files")
    splits: list[Split] = []
    small: dict[str | None, list[Part]] = {}  # node -> its small objects, in listing order

    def too_many(more: int = 0) -> None:
        if len(splits) + more > max_splits:
            raise ManifestError(
                f"input.splitSize {split_size} would cut the input into more than "
                f"{max_splits} map tasks: raise input.splitSize")

    for base, objects in inputs:
        for obj in objects:
            node = node_of(obj.uri, servers)
            if obj.size < split_size:
                small.setdefault(node, []).append(Part(obj.uri, 0, obj.size, obj.size, base))
            elif input_format == "whole-file" or obj.uri.endswith(".gz"):
                too_many(1)
                splits.append(Split.of(obj.uri, 0, obj.size, obj.size, base, node))
            else:
                too_many(-(-obj.size // split_size))
                starts = list(range(0, obj.size, split_size))
                if len(starts) > 1 and obj.size - starts[-1] < SLACK * split_size:
                    starts.pop()  # a small tail joins the split before it, as Hadoop's 10% slack
                for start, end in zip(starts, [*starts[1:], obj.size], strict=True):
                    splits.append(Split.of(obj.uri, start, end, obj.size, base, node))
    totals = {node: sum(p.size for p in parts) for node, parts in small.items()}
    counts = pack_counts(totals, split_size, parallelism, max_splits - len(splits))
    too_many(sum(counts.values()))
    for node, parts in small.items():
        splits += [Split(packed, node) for packed in _pack(parts, split_size, counts[node])]
    too_many()
    return splits


def pack_counts(totals: dict[str | None, int], split_size: int, parallelism: int,
                room: int) -> dict[str | None, int]:
    """How many splits each node's small objects (`totals`: node -> bytes) are packed into:
    as few as `split_size` (with SLACK) allows, then one more at a time (to the node whose
    splits are largest) until the count is a multiple of `parallelism`, while each split keeps
    at least MIN_PACKED bytes and the job stays within `room` more splits (Spark sizes its
    packed file partitions by bytes per core likewise)."""
    most = split_size * (1 + SLACK)
    counts = {node: max(1, math.ceil(total / most)) for node, total in totals.items()}
    while counts and sum(counts.values()) % parallelism and sum(counts.values()) < room:
        node = max(counts, key=lambda n: totals[n] / counts[n])
        if totals[node] / (counts[node] + 1) < MIN_PACKED:
            break
        counts[node] += 1
    return counts


def _pack(parts: list[Part], split_size: int, count: int) -> list[tuple[Part, ...]]:
    """`parts` in listing order, in `count` runs of about even bytes, and at most `split_size`
    (with SLACK): the k-th run ends at the object boundary nearest k/count of the bytes, or
    earlier where the next part would take it past the limit."""
    most = split_size * (1 + SLACK)
    share = sum(part.size for part in parts) / count
    runs: list[list[Part]] = [[]]
    done = packed = 0  # bytes in the runs before this one, and in this one
    for part in parts:
        ends = len(runs) * share
        if runs[-1] and (packed + part.size > most or done + packed + part.size / 2 > ends):
            runs.append([])
            done, packed = done + packed, 0
        runs[-1].append(part)
        packed += part.size
    return [tuple(run) for run in runs]


def split_document(split: Split, uri: str) -> dict:
    """The split as a task document carries it: itself when small, else written to `uri` and
    named there ({"stored": uri}). A pod's task document is an environment variable of at most
    128 KiB, and a split packed from thousands of small objects would not fit."""
    document = split.to_dict()
    encoded = json.dumps(document, separators=(",", ":")).encode()
    if len(encoded) <= INLINE_BYTES:
        return document
    store_for(uri).write_bytes(uri, encoded)
    return {"stored": uri}


def load_split(document: dict) -> Split:
    """The split a task document carries (see split_document)."""
    if "stored" in document:
        uri = document["stored"]
        document = json.loads(store_for(uri).read_bytes(uri))
    return Split.from_dict(document)
