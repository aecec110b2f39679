"""The interface every object store implements, and URI helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Protocol

from kubemr.errors import StorageError


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    uri: str
    size: int
    modified: float = 0.0


class ObjectStore(Protocol):
    def list(self, prefix_uri: str) -> list[ObjectInfo]:
        """Every object whose URI starts with `prefix_uri`, sorted by URI."""

    def open_range(self, uri: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """A stream of bytes [start, end) of the object (to its end when `end` is None)."""

    def read_bytes(self, uri: str) -> bytes: ...

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Create or replace the object atomically: readers see the old or the new bytes."""

    def write_bytes_if_absent(self, uri: str, data: bytes) -> bool:
        """Create the object only if no object has that name; False if one has (it is left
        as it is). Atomic: of writers racing for one name, exactly one gets True, and readers
        see no object or all of the winner's bytes."""

    def upload_file(self, uri: str, path: str) -> None:
        """Like write_bytes, from a local file of any size."""

    def exists(self, uri: str) -> bool: ...

    def copy(self, src_uri: str, dst_uri: str) -> None: ...

    def delete(self, uri: str) -> None: ...

    def delete_prefix(self, prefix_uri: str) -> None: ...


class StreamWrapper:
    """A readable binary stream over another; subclasses change read() and readinto()."""

    def __init__(self, stream):
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        return self._stream.read(n)

    def readinto(self, b) -> int:
        return self._stream.readinto(b)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def split_uri(uri: str) -> tuple[str, str, str]:
    """('s3', bucket, key) or ('file', '', absolute path)."""
    if uri.startswith("file://"):
        return "file", "", uri[len("file://"):]
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://"):].partition("/")
        if not bucket:
            raise StorageError(f"no bucket in {uri!r}: write s3://bucket/prefix")
        return "s3", bucket, key
    raise StorageError(f"unsupported URI {uri!r}: use s3://bucket/key or file:///path")


def join(prefix_uri: str, *names: str) -> str:
    """prefix + '/' + names, with exactly one slash between parts."""
    return "/".join([prefix_uri.rstrip("/"), *(n.strip("/") for n in names)])
