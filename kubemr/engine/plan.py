"""Plan the map tasks: list the input objects and cut them into byte-range splits."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass

from kubemr.errors import ManifestError, StorageError
from kubemr.storage import ObjectInfo, normalize_uri, store_for

GLOB_CHARS = "*?["
SLACK = 0.1
MAX_SPLITS = 100_000  # map tasks a job may plan: bounds the planner's memory and time


@dataclass(frozen=True)
class Split:
    """Bytes [start, end) of one input object; `base` is the input prefix it was listed under."""

    uri: str
    start: int
    end: int
    size: int
    base: str

    def to_dict(self) -> dict:
        return asdict(self)


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
    return base, [o for o in found if not _hidden(o.uri, base)]


def plan_splits(uris: list[str], input_format: str, split_size: int,
                max_splits: int = MAX_SPLITS) -> list[Split]:
    """The map tasks: refused, before any is made, when there would be more than max_splits."""
    splits: list[Split] = []
    for uri in uris:
        base, objects = list_input(uri)
        if not objects:
            raise StorageError(f"input {uri} matches no files")
        for obj in objects:
            whole = input_format == "whole-file" or obj.uri.endswith(".gz") or obj.size == 0
            if whole:
                splits.append(Split(obj.uri, 0, obj.size, obj.size, base))
                if len(splits) > max_splits:
                    raise ManifestError(f"the input holds more than {max_splits} files, one "
                                        "map task each: combine them, or name fewer")
                continue
            if len(splits) + obj.size // split_size >= max_splits:
                raise ManifestError(
                    f"input.splitSize {split_size} would cut the input into more than "
                    f"{max_splits} map tasks: raise input.splitSize")
            starts = list(range(0, obj.size, split_size))
            if len(starts) > 1 and obj.size - starts[-1] < SLACK * split_size:
                starts.pop()  # a small tail joins the split before it, as Hadoop's 10% slack
            for start, end in zip(starts, [*starts[1:], obj.size], strict=True):
                splits.append(Split(obj.uri, start, end, obj.size, base))
    return splits
