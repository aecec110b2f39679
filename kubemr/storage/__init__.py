"""Object storage behind one small interface, addressed by URI.

`file:///path/...` (or a plain path) is the local filesystem; `s3://bucket/key` is MinIO or any
S3 server, reached with the `minio` client.
"""

from __future__ import annotations

import os

from kubemr.errors import StorageError
from kubemr.storage.base import ObjectInfo, ObjectStore, StreamWrapper, join, split_uri
from kubemr.storage.local import LocalStore

__all__ = ["ObjectInfo", "ObjectStore", "StreamWrapper", "join", "normalize_uri", "split_uri",
           "store_for"]

_local = LocalStore()
_s3_stores: dict[str, ObjectStore] = {}


def normalize_uri(uri: str) -> str:
    """Turn a plain path into a file:// URI; leave s3:// and file:// URIs alone."""
    if uri.startswith(("s3://", "file://")):
        return uri
    if "://" in uri:
        raise StorageError(f"unsupported URI scheme in {uri!r}: use s3:// or file://")
    trailing = "/" if uri.endswith("/") else ""
    return "file://" + os.path.abspath(uri) + trailing


def store_for(uri: str) -> ObjectStore:
    """The store that holds `uri`."""
    scheme, _, _ = split_uri(uri)
    if scheme == "file":
        return _local
    from kubemr.storage.s3 import S3Store, endpoint_for

    endpoint = endpoint_for(uri)
    if endpoint not in _s3_stores:
        _s3_stores[endpoint] = S3Store(endpoint)
    return _s3_stores[endpoint]
