"""MinIO / S3 through the `minio` client.

Where the server is and how to log in comes from the environment, never from a manifest:
  KUBEMR_S3_ENDPOINT             e.g. http://127.0.0.1:9000 (https:// for TLS)
  KUBEMR_S3_ACCESS_KEY / KUBEMR_S3_SECRET_KEY, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
  KUBEMR_S3_CREDENTIALS_FILE     a file of `key=value` lines (endpoint, accessKey, secretKey), or a
                                 folder holding one file per key, as a mounted Secret does
  KUBEMR_S3_BUCKET_ENDPOINTS     optional JSON {"bucket": "http://host:port"} for buckets kept on
                                 other servers (one MinIO server per node)
"""

from __future__ import annotations

import json
import os
import time
from typing import BinaryIO
from urllib.parse import urlparse

from kubemr.errors import StorageError, StorageUnavailable
from kubemr.storage.base import ObjectInfo, StreamWrapper, split_uri

PART_SIZE = 16 << 20
CONNECT_SECONDS = 10
READ_SECONDS = 300  # the client's own: a server-side copy of a large object answers late
SERVER_ERRORS = {"InternalError", "ServiceUnavailable", "SlowDown", "XMinioServerNotInitialized",
                 "XMinioStorageFull", "RequestTimeout"}


def _settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    path = os.environ.get("KUBEMR_S3_CREDENTIALS_FILE")
    if path:
        if os.path.isdir(path):
            for name in ("endpoint", "accessKey", "secretKey"):
                if os.path.isfile(os.path.join(path, name)):
                    with open(os.path.join(path, name)) as f:
                        settings[name] = f.read().strip()
        else:
            try:
                with open(path) as f:
                    for line in f:
                        key, sep, value = line.partition("=")
                        if sep and not line.lstrip().startswith("#"):
                            settings[key.strip()] = value.strip()
            except OSError as e:
                raise StorageError(f"cannot read KUBEMR_S3_CREDENTIALS_FILE {path}: {e}") from None
    env = os.environ
    for key, names in {
        "endpoint": ("KUBEMR_S3_ENDPOINT",),
        "accessKey": ("KUBEMR_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
        "secretKey": ("KUBEMR_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
    }.items():
        for name in names:
            if env.get(name):
                settings[key] = env[name]
                break
    return settings


def endpoint_for(uri: str, default: str | None = None) -> str:
    _, bucket, _ = split_uri(uri)
    by_bucket = json.loads(os.environ.get("KUBEMR_S3_BUCKET_ENDPOINTS") or "{}")
    endpoint = by_bucket.get(bucket) or default or _settings().get("endpoint")
    if not endpoint:
        raise StorageError(
            f"no S3 endpoint for {uri}: set KUBEMR_S3_ENDPOINT (e.g. http://127.0.0.1:9000)"
        )
    return endpoint


def _raise(error: Exception):
    raise error


class _Stream(StreamWrapper):
    """A urllib3 response that releases its connection when closed."""

    def read(self, n: int = -1) -> bytes:
        return self._stream.read(None if n is None or n < 0 else n)

    def close(self) -> None:
        self._stream.close()
        self._stream.release_conn()


class S3Store:
    def __init__(self, endpoint: str, credentials=None):
        from minio import Minio
        from urllib3 import Timeout

        url = urlparse(endpoint if "://" in endpoint else "http://" + endpoint)
        settings = _settings()
        if credentials is not None:
            settings = {"accessKey": credentials.access_key, "secretKey": credentials.secret_key}
        if not settings.get("accessKey") or not settings.get("secretKey"):
            raise StorageError(
                "no S3 credentials: set KUBEMR_S3_ACCESS_KEY and KUBEMR_S3_SECRET_KEY "
                "(or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or KUBEMR_S3_CREDENTIALS_FILE)"
            )
        self.endpoint = endpoint
        self._client = Minio(
            url.netloc,
            access_key=settings["accessKey"],
            secret_key=settings["secretKey"],
            secure=url.scheme == "https",
            region=os.environ.get("KUBEMR_S3_REGION", "us-east-1"),
        )
        # A server that does not answer (its node stopped) is given up on after seconds, not
        # the client's 5 minutes per try: a dataset's block is then read from another replica.
        self._client._http.connection_pool_kw["timeout"] = Timeout(connect=CONNECT_SECONDS,
                                                                   read=READ_SECONDS)
        self._buckets_seen: set[str] = set()

    def _call(self, what: str, uri: str, fn, *args, **kwargs):
        from minio.error import S3Error
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchBucket"):
                raise StorageError(f"no such object: {uri}") from None
            if e.code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StorageError(
                    f"S3 server {self.endpoint} refused to {what} {uri}: {e.code} "
                    "(check the credentials)"
                ) from None
            if e.code in SERVER_ERRORS:
                raise StorageUnavailable(f"cannot {what} {uri}: {e.code}: {e.message}") from None
            raise StorageError(f"cannot {what} {uri}: {e.code}: {e.message}") from None
        except ValueError as e:  # the client's own checks: a bucket or object name
            raise StorageError(f"cannot {what} {uri}: {e}") from None
        except (OSError, HTTPError) as e:
            reason = getattr(e, "reason", None) or e
            raise StorageUnavailable(
                f"cannot {what} {uri}: S3 server {self.endpoint}: {reason}") from None

    def _ensure_bucket(self, bucket: str, uri: str) -> None:
        from minio.error import S3Error

        if bucket in self._buckets_seen:
            return
        try:
            exists = self._client.bucket_exists(bucket)
        except S3Error as e:
            # A user scoped to prefixes of a bucket may not check the bucket itself: a write
            # into a bucket that is not there then says so.
            exists = e.code == "AccessDenied" or self._call("check bucket of", uri, _raise, e)
        if not exists:
            try:
                self._client.make_bucket(bucket)
            except S3Error as e:
                if e.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise StorageError(f"cannot create bucket {bucket}: {e.code}") from None
        self._buckets_seen.add(bucket)

    def list(self, prefix_uri: str) -> list[ObjectInfo]:
        from minio.error import S3Error

        _, bucket, prefix = split_uri(prefix_uri)

        def listing() -> list[ObjectInfo]:
            # Converted page by page: the client's own objects for a long listing cost ~3x.
            try:
                return [ObjectInfo(f"s3://{bucket}/{o.object_name}", o.size,
                                   o.last_modified.timestamp() if o.last_modified else 0.0)
                        for o in self._client.list_objects(bucket, prefix=prefix,
                                                           recursive=True)
                        if not o.is_dir]
            except S3Error as e:
                if e.code == "NoSuchBucket":
                    return []
                raise

        return sorted(self._call("list", prefix_uri, listing), key=lambda o: o.uri)

    def open_range(self, uri: str, start: int = 0, end: int | None = None) -> BinaryIO:
        _, bucket, key = split_uri(uri)
        length = 0 if end is None else end - start
        if end is not None and length <= 0:
            import io

            return io.BytesIO(b"")
        response = self._call("read", uri, self._client.get_object, bucket, key,
                              offset=start, length=length)
        return _Stream(response)

    def read_bytes(self, uri: str) -> bytes:
        with self.open_range(uri) as stream:
            return stream.read()

    def write_bytes(self, uri: str, data: bytes) -> None:
        import io

        _, bucket, key = split_uri(uri)
        self._ensure_bucket(bucket, uri)
        self._call("write", uri, self._client.put_object, bucket, key, io.BytesIO(data),
                   len(data))

    def write_bytes_if_absent(self, uri: str, data: bytes) -> bool:
        """A PUT with `If-None-Match: *`: the server refuses it (412 PreconditionFailed) when
        the object exists. MinIO and AWS S3 honour it (kubemr's tests check it against a real
        MinIO server); a server that ignored it would make this an ordinary write."""
        from minio.error import S3Error

        _, bucket, key = split_uri(uri)
        self._ensure_bucket(bucket, uri)
        headers = {"If-None-Match": "*", "Content-Type": "application/octet-stream"}

        def put() -> bool | None:
            try:
                # minio 7.2's put_object makes extra headers user metadata (X-Amz-Meta-*):
                # the conditional header goes through the client's PutObject call itself.
                self._client._put_object(bucket, key, data, headers)
                return True
            except S3Error as e:
                if e.code == "PreconditionFailed":
                    return False
                if e.code == "ConditionalRequestConflict":  # a racing conditional write
                    return None
                raise

        for attempt in range(5):
            created = self._call("write", uri, put)
            if created is not None:
                return created
            time.sleep(0.05 * (attempt + 1))
        raise StorageUnavailable(f"cannot write {uri}: conditional writes kept conflicting")

    def upload_file(self, uri: str, path: str) -> None:
        _, bucket, key = split_uri(uri)
        self._ensure_bucket(bucket, uri)
        self._call("write", uri, self._client.fput_object, bucket, key, path,
                   part_size=PART_SIZE)

    def exists(self, uri: str) -> bool:
        from minio.error import S3Error

        _, bucket, key = split_uri(uri)

        def stat() -> bool | None:
            try:
                self._client.stat_object(bucket, key)
                return True
            except S3Error as e:
                if e.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                    return False
                if e.code == "AccessDenied":
                    return None
                raise

        found = self._call("check", uri, stat)
        if found is None:
            # S3 answers 403, not 404, for a missing key to a user who may list only
            # prefixes of the bucket: a listing of the key itself tells.
            return any(o.uri == uri for o in self.list(uri))
        return found

    def copy(self, src_uri: str, dst_uri: str) -> None:
        from minio.commonconfig import CopySource

        _, src_bucket, src_key = split_uri(src_uri)
        _, bucket, key = split_uri(dst_uri)
        self._ensure_bucket(bucket, dst_uri)
        self._call("copy to", dst_uri, self._client.copy_object, bucket, key,
                   CopySource(src_bucket, src_key))

    def delete(self, uri: str) -> None:
        _, bucket, key = split_uri(uri)
        self._call("delete", uri, self._client.remove_object, bucket, key)

    def delete_prefix(self, prefix_uri: str) -> None:
        from minio.deleteobjects import DeleteObject

        _, bucket, _ = split_uri(prefix_uri)
        names = [DeleteObject(split_uri(o.uri)[2]) for o in self.list(prefix_uri)]
        if names:
            errors = list(self._client.remove_objects(bucket, names))
            if errors:
                raise StorageError(f"cannot delete {prefix_uri}: {errors[0]}")
