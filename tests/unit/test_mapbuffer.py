"""The map buffer: counted and listed values come back exact, and its size estimate holds.

Every test runs with both tallies: the compiled one (kubemr/engine/_tally.c) and the Python one.
"""

import gc
import random
import weakref
from collections import Counter

import pytest

from kubemr.engine import mapbuffer
from kubemr.engine.mapbuffer import MapBuffer, PyTally
from kubemr.errors import UserCodeError

try:
    from kubemr.engine._tally import Tally as CompiledTally
except ImportError:
    CompiledTally = None
NOT_COMPILED = ("kubemr.engine._tally was not compiled (a C compiler and Python's headers are "
                "needed)")


@pytest.fixture(autouse=True, params=[
    pytest.param(CompiledTally, id="compiled",
                 marks=pytest.mark.skipif(CompiledTally is None, reason=NOT_COMPILED)),
    pytest.param(PyTally, id="python"),
])
def tally(request, monkeypatch):
    monkeypatch.setattr(mapbuffer, "Tally", request.param)
    return request.param


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


def test_the_tally_counts_only_batches_whose_values_are_one_object(tally):
    one = 1
    counts = tally()
    assert counts.add([("b", one), ("a", one), ("b", one)], one)
    assert counts.add([("c", one)], one)
    for batch in ([("a", one), ("a", True)], [("a", one), ("a", 1.0)], [("a", one), ("a", one, 2)],
                  [("a", one), "ab"], [("a", one), ("a",)]):
        assert not counts.add(batch, one), batch  # equal is not enough: True must stay True
    assert sorted(counts.items()) == [("a", 1), ("b", 2), ("c", 1)]
    assert len(counts) == 3


def test_a_batch_with_an_equal_but_different_value_is_listed_as_it_is():
    buffer = MapBuffer()
    buffer.add([("a", 1), ("a", 1)])
    buffer.add([("a", 1), ("a", True), ("a", 1.0)])
    values = [v for _, vs, _ in buffer.drain() for v in vs]
    assert sorted(map(repr, values)) == ["1", "1", "1", "1.0", "True"]


def test_the_tally_counts_keys_of_any_hashable_type(tally):
    counts = tally()
    keys = [("k", 1), b"k", 2**70, -1, 0.5, None, frozenset({1}), ("k", 1)]
    assert counts.add([(k, None) for k in keys], None)
    assert dict(counts.items()) == Counter(keys)
    with pytest.raises(TypeError, match="unhashable"):
        counts.add([([1], None)], None)


def test_the_tally_pumps_str_pairs_of_its_value_and_stops_at_any_other(tally):
    one = 1
    counts = tally()
    pairs = iter([("b", one), ("a", one), ("b", one), ("a", True), ("c", one)])
    assert counts.pump(pairs, one, 100) == (3, [("a", True)])  # equal is not enough
    assert counts.pump(pairs, one, 100) == (1, [])  # the iterator ended
    assert counts.pump(pairs, one, 100) == (0, [])
    pairs = iter([("a", one)] * 5 + [(b"a", one)])
    assert counts.pump(pairs, one, 3) == (3, [])  # the limit
    assert counts.pump(pairs, one, 3) == (2, [(b"a", one)])  # a key that is not a str
    for stop in ("ab", ("a",), ("a", one, 2), None):
        assert counts.pump(iter([("c", one), stop, ("c", one)]), one, 9) == (1, [stop])
    assert sorted(counts.items()) == [("a", 6), ("b", 2), ("c", 5)]


def test_an_error_of_the_mapper_comes_out_of_the_pump(tally):
    def pairs():
        yield "a", 1
        raise ValueError("the mapper failed")

    with pytest.raises(ValueError, match="the mapper failed"):
        tally().pump(pairs(), 1, 10)


def test_the_buffer_pumps_only_after_a_counted_batch_and_stays_exact():
    buffer = MapBuffer()
    words = [(f"w{i % 50}", 1) for i in range(1000)]
    assert buffer.pump(iter(words), 100) == (0, [])  # nothing counted yet: nothing taken
    buffer.add(words[:10])
    rest = iter(words[10:] + [("x", 2)] + words[:5])
    assert buffer.pump(rest, 10_000) == (990, [("x", 2)])
    buffer.add([("x", 2), ("x", 3)])  # listed: the pump goes on counting 1s
    assert buffer.pump(rest, 10_000) == (5, [])
    assert buffer.pairs == 1007
    assert buffer.distinct_keys() == 51 and buffer.estimated_bytes > 51 * mapbuffer.GROUP_OVERHEAD
    assert drained(buffer) == Counter(words + [("x", 2), ("x", 3)] + words[:5])


def test_the_tally_is_compiled_in_this_install():
    """hack/test.sh installs kubemr with a C compiler: the map buffer uses the compiled tally."""
    assert CompiledTally is not None, NOT_COMPILED
    assert mapbuffer.COMPILED


def test_the_tally_stays_exact_as_it_grows(tally):
    rng = random.Random(7)
    alphabet = "abcdefghij\u00e9\u4e2d\U0001f600"
    keys = ["".join(rng.choices(alphabet, k=rng.randint(0, 20))) for _ in range(30_000)]
    keys += list(range(-2_000, 2_000)) + [(k, 1) for k in keys[:2_000]]
    counts, want = tally(), Counter()
    for _ in range(50):
        batch = [(rng.choice(keys), None) for _ in range(4096)]
        assert counts.add(batch, None)
        want.update(k for k, _ in batch)
    assert len(counts) == len(want)
    assert dict(counts.items()) == want


def test_the_tally_tells_keys_apart_at_every_length_and_width(tally):
    """Keys of up to 15 bytes are found by their bytes in the table (kubemr/engine/_tally.c:
    up to 7 in one word, 8 to 15 in two), longer ones by comparing the stored key: around those
    boundaries, in 1-, 2- and 4-byte characters, near keys stay apart and equal ones (a str
    subclass too) count together."""
    class Name(str):
        pass

    keys = []
    for char in ("a", "\u00e9", "\u4e2d", "\U0001f600"):
        for n in range(20):
            keys += [char * n, "b" + char * n, char * n + "b", (char * n)[:-1] + "c" if n else "c",
                     char * n + "\x00", "\x00" + char * n]
    keys += ["-N", "\x00\xf6\x01\x00", "\uf600\u0001"]  # the bytes of "\u4e2d", "\U0001f600"
    rng = random.Random(3)
    counts, want = tally(), Counter()
    assert counts.add([(Name(k), None) for k in keys[::5]], None)  # stored first: subclasses
    want.update(keys[::5])
    for _ in range(20):
        pairs = [((rng.choice(keys) + "x")[:-1], None) for _ in range(500)]  # new, as from mappers
        assert counts.pump(iter(pairs), None, 1000) == (500, [])
        want.update(k for k, _ in pairs)
    assert len(counts) == len(want)
    assert dict(counts.items()) == want


class SameHash:
    def __init__(self, name):
        self.name = name

    def __hash__(self):
        return 42

    def __eq__(self, other):
        return isinstance(other, SameHash) and self.name == other.name


def test_the_tally_counts_equal_keys_together_and_colliding_keys_apart(tally):
    class Name(str):
        pass

    counts = tally()
    assert counts.add([(1, 0), (1.0, 0), (True, 0), ("k", 0), (Name("k"), 0)], 0)
    assert counts.add([(SameHash(i % 50), 0) for i in range(500)], 0)
    found = dict(counts.items())
    assert found[1] == 3 and found["k"] == 2
    assert sorted(k.name for k in found if isinstance(k, SameHash)) == list(range(50))
    assert {found[k] for k in found if isinstance(k, SameHash)} == {10}


def test_a_key_whose_eq_raises_or_counts_more_keys_leaves_the_tally_whole(tally):
    counts = tally()

    class Raises(SameHash):
        __hash__ = SameHash.__hash__

        def __eq__(self, other):
            raise RuntimeError("user __eq__")

    class AddsKeys(SameHash):
        __hash__ = SameHash.__hash__
        added = False

        def __eq__(self, other):  # the first call grows the table under the lookup calling it
            if not self.added:
                self.added = True
                counts.add([(f"k{i}", None) for i in range(5_000)], None)
            return False

    assert counts.add([(SameHash("a"), None)], None)
    with pytest.raises(RuntimeError, match="user __eq__"):
        counts.add([(Raises("b"), None)], None)
    assert counts.add([(AddsKeys("c"), None)], None)
    found = dict(counts.items())
    assert len(found) == 5_002 and set(found.values()) == {1}
    assert sorted(k.name for k in found if isinstance(k, SameHash)) == ["a", "c"]


def test_a_tally_in_a_reference_cycle_is_collected(tally):
    counts = tally()
    key = (counts,)
    assert counts.add([(key, None)], None)
    if tally is PyTally:
        alive = weakref.ref(counts)
        del counts, key
        gc.collect()
        assert alive() is None
    else:  # the compiled Tally has no weak references: the collector must see its keys
        assert any(r is key for r in gc.get_referents(counts))
        del counts, key
        gc.collect()


def test_int_keys_that_share_their_low_bits_are_counted_exactly(tally):
    counts = tally()
    keys = [i << 20 for i in range(20_000)]  # one long probe chain, were hashes not mixed
    assert counts.add([(k, None) for k in keys], None)
    assert counts.add([(k, None) for k in keys], None)
    assert dict(counts.items()) == dict.fromkeys(keys, 2)


def test_sorted_drain_merges_counted_and_listed_values_in_order():
    low, high = "apple", "pear"
    buffer = MapBuffer()
    buffer.add([("a", high)] * 3 + [("b", high)])
    buffer.add([("a", low)] * 2)
    buffer.add([("a", "kiwi"), ("a", "zucchini"), ("a", "banana"), ("c", "fig"), ("c", "date")])
    got = {key: (list(values), count) for key, values, count in buffer.drain(sort=True)}
    assert got == {"a": (["apple", "apple", "banana", "kiwi", "pear", "pear", "pear",
                          "zucchini"], 8),
                   "b": (["pear"], 1), "c": (["date", "fig"], 2)}
    buffer.add([("a", high)] * 3)
    buffer.add([("a", low)] * 2)
    buffer.add([("a", "kiwi"), ("a", "banana")])
    [(_, values, _)] = buffer.drain(sort=True, value_key=lambda fruit: (-len(fruit), fruit))
    assert list(values) == ["banana", "apple", "apple", "kiwi", "pear", "pear", "pear"]


def test_sorted_drain_gives_a_counted_key_without_sorting_it(monkeypatch):
    """All of a counted key's values are one object: in order as they are, repeated lazily."""
    monkeypatch.setattr(mapbuffer, "sort_values", None)  # any sort would fail
    buffer = MapBuffer()
    for _ in range(250):
        buffer.add([("a", 1)] * 4000)
    [(key, values, count)] = buffer.drain(sort=True)
    assert key == "a" and count == 1_000_000 and not isinstance(values, list)
    assert sum(values) == 1_000_000


def test_sorted_drain_names_values_of_mixed_types():
    buffer = MapBuffer()
    buffer.add([("a", 1)] * 3)
    buffer.add([("a", "x")] * 3)
    with pytest.raises(UserCodeError, match="values of key 'a' have different types"):
        [list(values) for _, values, _ in buffer.drain(sort=True)]
    buffer = MapBuffer()
    buffer.add([("a", 1)] * 3)
    buffer.add([("a", "x"), ("a", "y")])
    with pytest.raises(UserCodeError, match="values of key 'a' have different types"):
        [list(values) for _, values, _ in buffer.drain(sort=True)]
