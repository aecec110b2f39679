import os
import subprocess
import sys
import zlib

import pytest

from kubemr.engine.partition import default_partition, key_bytes
from kubemr.errors import UserCodeError

KEYS = ["apple", "ü", "", "日本", 0, 1, -7, 2**70, 3.5, b"raw", None, ("a", 1), ("a", ("b", 2.5))]
SCRIPT = (
    "from kubemr.engine.partition import default_partition;"
    f"print([default_partition(k, 7) for k in {KEYS!r}])"
)


def test_same_partition_under_every_hash_seed():
    results = set()
    for seed in ("0", "1", "12345", "random"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.check_output([sys.executable, "-c", SCRIPT], env=env, text=True)
        results.add(out)
    assert len(results) == 1
    assert results.pop().strip() == str([default_partition(k, 7) for k in KEYS])


def test_equal_keys_have_equal_bytes():
    assert key_bytes(1) == key_bytes(1.0) == key_bytes(True)
    assert key_bytes("a") != key_bytes(b"a")
    assert key_bytes(("ab", "c")) != key_bytes(("a", "bc"))


def test_a_key_goes_where_its_canonical_bytes_say_whatever_its_type():
    """str keys take a shortcut (crc32 continued from the tag's); it must land where the
    canonical bytes do, and an equal key of a str subclass where the str does."""
    class Name(str):
        pass

    for key in [*KEYS, "\udc80 lone surrogate", "x" * 1000, Name("apple")]:
        for n in (2, 7, 64):
            assert default_partition(key, n) == zlib.crc32(key_bytes(key)) % n, key
    assert default_partition(Name("apple"), 7) == default_partition("apple", 7)


def test_partitions_spread_over_range():
    counts = [0] * 8
    for i in range(8000):
        counts[default_partition(f"word{i}", 8)] += 1
    assert min(counts) > 800


def test_unsupported_key_type_is_named():
    with pytest.raises(UserCodeError, match="type list cannot be partitioned"):
        key_bytes([1, 2])
