"""The local filesystem as an object store (file:// URIs)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from typing import BinaryIO

from kubemr.errors import StorageError
from kubemr.storage.base import ObjectInfo, StreamWrapper, split_uri

_UMASK = os.umask(0)
os.umask(_UMASK)


def _path(uri: str) -> str:
    return split_uri(uri)[2]


class _RangeReader(StreamWrapper):
    """A file object that stops at `end`."""

    def __init__(self, f: BinaryIO, remaining: int | None):
        super().__init__(f)
        self._remaining = remaining

    def read(self, n: int = -1) -> bytes:
        if self._remaining is None:
            return self._stream.read(n)
        if n < 0 or n > self._remaining:
            n = self._remaining
        data = self._stream.read(n)
        self._remaining -= len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class LocalStore:
    def list(self, prefix_uri: str) -> list[ObjectInfo]:
        prefix = _path(prefix_uri)
        if os.path.isfile(prefix):
            stat = os.stat(prefix)
            return [ObjectInfo("file://" + prefix, stat.st_size, stat.st_mtime)]
        top = prefix if os.path.isdir(prefix) else os.path.dirname(prefix)
        found = []
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for name in files:
                path = os.path.join(root, name)
                if path.startswith(prefix) and not name.startswith(".kubemr-tmp-"):
                    stat = os.stat(path)
                    found.append(ObjectInfo("file://" + path, stat.st_size, stat.st_mtime))
        return sorted(found, key=lambda o: o.uri)

    def open_range(self, uri: str, start: int = 0, end: int | None = None) -> BinaryIO:
        try:
            f = open(_path(uri), "rb")
        except FileNotFoundError:
            raise StorageError(f"no such object: {uri}") from None
        f.seek(start)
        return _RangeReader(f, None if end is None else max(0, end - start))

    def read_bytes(self, uri: str) -> bytes:
        try:
            with open(_path(uri), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise StorageError(f"no such object: {uri}") from None

    def _atomic_write(self, path: str, fill) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".kubemr-tmp-", dir=os.path.dirname(path))
        os.fchmod(fd, 0o666 & ~_UMASK)
        try:
            with os.fdopen(fd, "wb") as f:
                fill(f)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def write_bytes(self, uri: str, data: bytes) -> None:
        self._atomic_write(_path(uri), lambda f: f.write(data))

    def write_bytes_if_absent(self, uri: str, data: bytes) -> bool:
        """A hard link of a complete temporary file: link() fails if the name exists, so
        the object appears whole or not at all. Where the filesystem has no hard links, an
        exclusive create (O_CREAT | O_EXCL) and a write."""
        path = _path(uri)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".kubemr-tmp-", dir=os.path.dirname(path))
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                os.link(tmp, path)
                return True
            except FileExistsError:
                return False
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
                                   errno.EMLINK):
                    raise StorageError(f"cannot write {uri}: {e}") from None
            try:
                exclusive = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                return False
            with os.fdopen(exclusive, "wb") as f:
                f.write(data)
            return True
        finally:
            os.unlink(tmp)

    def upload_file(self, uri: str, path: str) -> None:
        def fill(f):
            with open(path, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)

        self._atomic_write(_path(uri), fill)

    def exists(self, uri: str) -> bool:
        return os.path.isfile(_path(uri))

    def copy(self, src_uri: str, dst_uri: str) -> None:
        self.upload_file(dst_uri, _path(src_uri))

    def delete(self, uri: str) -> None:
        try:
            os.unlink(_path(uri))
        except FileNotFoundError:
            pass

    def delete_prefix(self, prefix_uri: str) -> None:
        prefix = _path(prefix_uri)
        if prefix.endswith("/") and os.path.isdir(prefix):
            shutil.rmtree(prefix, ignore_errors=True)
            return
        for obj in self.list(prefix_uri):
            self.delete(obj.uri)
