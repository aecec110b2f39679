"""The default partitioner: a stable hash of the key's canonical bytes.

Python's hash() is salted per process, so it cannot place a key in the same partition on every
machine. The canonical bytes of equal keys are equal (1 and 1.0 included), whatever process made
them.
"""

from __future__ import annotations

import struct
import zlib

from kubemr.errors import UserCodeError


def key_bytes(key: object) -> bytes:
    if type(key) is str:
        return b"s" + key.encode("utf-8", "surrogatepass")
    if type(key) is int or type(key) is bool:
        return b"i" + str(int(key)).encode()
    if type(key) is float:
        if key.is_integer():
            return b"i" + str(int(key)).encode()
        return b"f" + struct.pack(">d", key)
    if type(key) is bytes:
        return b"b" + key
    if key is None:
        return b"n"
    if isinstance(key, tuple):
        parts = [key_bytes(k) for k in key]
        return b"t" + b"".join(struct.pack(">I", len(p)) + p for p in parts)
    if isinstance(key, str | int | float | bytes):
        return key_bytes(type(key).__mro__[-2](key))
    raise UserCodeError(
        f"key {key!r:.60} of type {type(key).__name__} cannot be partitioned: keys must be str, "
        "int, float, bytes, None or tuples of these (or give a partitioner)"
    )


STR_TAG_CRC = zlib.crc32(b"s")  # a str key's bytes are b"s" and its UTF-8: crc32 goes on from here


def default_partition(key: object, num_partitions: int) -> int:
    if type(key) is str:
        return zlib.crc32(key.encode("utf-8", "surrogatepass"), STR_TAG_CRC) % num_partitions
    return zlib.crc32(key_bytes(key)) % num_partitions


def checked_partition(partitioner, key: object, value: object, num_partitions: int) -> int:
    p = partitioner(key, value, num_partitions)
    if type(p) is not int or not 0 <= p < num_partitions:
        raise UserCodeError(
            f"partitioner returned {p!r} for key {key!r:.60}: it must return an int in "
            f"[0, {num_partitions})"
        )
    return p
