"""The map buffer: counted and listed values come back exact, and its size estimate holds."""

from collections import Counter

import pytest

from kubemr.errors import UserCodeError
from kubemr.mapbuffer import MapBuffer


def drained(buffer: MapBuffer) -> Counter:
    pairs = Counter()
    for key, values, count in buffer.drain():
        values = list(values)
        assert len(values) == count
        pairs.update((key, v) for v in values)
    return pairs


def test_many_shared_values_come_back_exact_and_are_counted_in_the_estimate():
    """An inverted index: each document's name is one object shared by all its words."""
    buffer, want = MapBuffer(), Counter()
    for doc in range(50):
        name = f"document-{doc}-" + "x" * 10_000
        batch = [(f"word{(doc * 7 + i) % 300}", name) for i in range(200)]
        buffer.add(batch)
        want.update(batch)
    assert buffer.estimated_bytes > 50 * 10_000
    assert drained(buffer) == want
    assert not buffer and drained(buffer) == Counter()


def test_counted_and_listed_values_of_one_key_mix():
    buffer = MapBuffer()
    buffer.add([("a", 1)] * 5)
    buffer.add([("a", 2), ("a", 1.0), ("b", None)])
    assert drained(buffer) == Counter({("a", 1): 6, ("a", 2): 1, ("b", None): 1})


def test_an_unhashable_key_inside_a_tuple_is_named():
    with pytest.raises(UserCodeError, match=r"\(1, \[2\]\).*unhashable"):
        MapBuffer().add([((1, [2]), 1)])
