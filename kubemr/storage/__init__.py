"""Object storage behind one small interface, addressed by URI.

`file:///path/...` (or a plain path) is the local filesystem; `s3://bucket/key` is MinIO or any
S3 server, reached with the `minio` client.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from kubemr.errors import StorageError
from kubemr.storage.base import ObjectInfo, ObjectStore, StreamWrapper, join, split_uri
from kubemr.storage.local import LocalStore

__all__ = ["Credentials", "ObjectInfo", "ObjectStore", "StreamWrapper", "join",
           "normalize_uri", "split_uri", "store_for", "using"]


@dataclass(frozen=True)
class Credentials:
    """Whose S3 credentials a store acts with (a job's own, in the operator)."""

    access_key: str
    secret_key: str
    endpoint: str | None = None  # the default endpoint for buckets not mapped to a node

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials(access_key={self.access_key!r}, endpoint={self.endpoint!r})"


_local = LocalStore()
_s3_stores: dict[tuple[str, str | None], ObjectStore] = {}
# A forked child (the log copier) makes its own connections: two processes on one socket garble
# both conversations.
os.register_at_fork(after_in_child=_s3_stores.clear)
_credentials: ContextVar[Credentials | None] = ContextVar("kubemr_credentials", default=None)


@contextmanager
def using(credentials: Credentials | None) -> Iterator[None]:
    """Within the block (in this thread or task), s3:// stores act with `credentials`;
    None means the process's own (KUBEMR_S3_* or AWS_* variables)."""
    token = _credentials.set(credentials)
    try:
        yield
    finally:
        _credentials.reset(token)


def normalize_uri(uri: str) -> str:
    """Turn a plain path (~ is the home folder) into a file:// URI; leave s3:// and file://
    URIs alone."""
    if uri.startswith(("s3://", "file://")):
        return uri
    if "://" in uri:
        raise StorageError(f"unsupported URI scheme in {uri!r}: use s3:// or file://")
    trailing = "/" if uri.endswith("/") else ""
    return "file://" + os.path.abspath(os.path.expanduser(uri)) + trailing


def store_for(uri: str) -> ObjectStore:
    """The store that holds `uri`."""
    scheme, _, _ = split_uri(uri)
    if scheme == "file":
        return _local
    from kubemr.storage.s3 import S3Store, endpoint_for

    credentials = _credentials.get()
    endpoint = endpoint_for(uri, credentials.endpoint if credentials else None)
    key = (endpoint, credentials.access_key if credentials else None)
    if key not in _s3_stores:
        _s3_stores[key] = S3Store(endpoint, credentials)
    return _s3_stores[key]
