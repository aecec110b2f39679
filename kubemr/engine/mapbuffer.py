"""The map output buffer: the mapper's pairs grouped by key, with an estimate of their size.

A batch whose values are all one object (word count's 1s, a distinct's None) is counted per
key instead of listed (by kubemr/engine/_tally.c where it is compiled) and costs no memory per pair;
its values come back as that object repeated. Other batches are listed per key. A key's values
come back in no particular order (MapReduce promises none) unless the job sorts values: then
each key's listed values are sorted, and its counted ones, all equal to one object, need no
sort (a key holding both has them merged). Counting is off for jobs with a custom partitioner,
which must see every value one by one.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice, repeat
from operator import is_, itemgetter

from kubemr.engine.sortedruns import merge_values, sort_keys, sort_values
from kubemr.errors import UserCodeError

VALUE_SLOT = 9
GROUP_OVERHEAD = 120
COUNTED_VALUES = 4  # at most this many distinct shared values are counted; others are listed
first, second = itemgetter(0), itemgetter(1)


class PyTally:
    """Counts of the keys of batches whose pairs all hold one value object.

    The Python form of kubemr.engine._tally.Tally (kubemr/engine/_tally.c), used where it was
    not compiled.
    """

    def __init__(self) -> None:
        self._counts: Counter = Counter()

    def add(self, batch: list, value: object) -> bool:
        if not (set(map(len, batch)) == {2}
                and all(map(is_, map(second, batch), repeat(value)))):
            return False
        self._counts.update(map(first, batch))
        return True

    def pump(self, pairs: Iterator, value: object, limit: int) -> tuple[int, list]:
        counted = 0
        for pair in islice(pairs, limit):
            if not (isinstance(pair, tuple) and len(pair) == 2 and pair[1] is value
                    and type(pair[0]) is str):
                return counted, [pair]
            self._counts[pair[0]] += 1
            counted += 1
        return counted, []

    def items(self) -> list[tuple[object, int]]:
        return list(self._counts.items())

    def __len__(self) -> int:
        return len(self._counts)


try:
    from kubemr.engine._tally import Tally
except ImportError:  # installed without a C compiler
    Tally = PyTally
COMPILED = Tally is not PyTally


class MapBuffer:
    def __init__(self, count_repeats: bool = True) -> None:
        self._count_repeats = count_repeats
        self._clear()

    def _clear(self) -> None:
        self._lists: defaultdict = defaultdict(list)
        self._counted: dict[int, tuple[object, Tally]] = {}  # id(value) -> (value, counts)
        self._pumping: tuple[object, Tally] | None = None  # the last batch's, if it was counted
        self._key_bytes = 0.0
        self.pairs = 0
        self.estimated_bytes = 0.0

    def add(self, batch: list) -> None:
        """Add a non-empty batch of (key, value) pairs."""
        try:
            self._add(batch)
        except (TypeError, IndexError, KeyError, ValueError) as e:
            check_pairs(batch)
            if "unhashable" in str(e):
                bad = next((k for k, _ in batch if not _hashable(k)), batch[0][0])
                raise UserCodeError(
                    f"mapper emitted key {bad!r:.60} of type {type(bad).__name__}, which is "
                    "unhashable: use str, int, float, bytes or tuple keys"
                ) from None
            raise

    def _add(self, batch: list) -> None:
        value = batch[0][1]
        keys_before = self.distinct_keys()
        sample = batch[:: max(1, len(batch) // 8)]
        tally = self._tally_for(value)
        if tally is not None and tally.add(batch, value):
            self._pumping = (value, tally)
            value_bytes = 0.0
            if id(value) not in self._counted:
                self._counted[id(value)] = (value, tally)
                value_bytes = _value_size(value)
        else:
            lists = self._lists
            for k, v in batch:
                lists[k].append(v)
            value_bytes = len(batch) * (
                VALUE_SLOT + sum(_value_size(v) for _, v in sample) / len(sample))
        self._key_bytes = sum(sys.getsizeof(k) for k, _ in sample) / len(sample)
        self.pairs += len(batch)
        self.estimated_bytes += value_bytes + \
            (self.distinct_keys() - keys_before) * (self._key_bytes + GROUP_OVERHEAD)

    def pump(self, pairs: Iterator, limit: int) -> tuple[int, list]:
        """Count up to `limit` pairs straight from the iterator `pairs` while they are (str,
        value) pairs of the value the last batch was counted under, with no list of them
        made. Returns how many it counted and a list of the pair it stopped at, if any, for
        `add`. Counts nothing unless the last batch added was counted.
        """
        if self._pumping is None:
            return 0, []
        value, tally = self._pumping
        keys_before = len(tally)
        counted, rest = tally.pump(pairs, value, limit)
        self.pairs += counted
        self.estimated_bytes += (len(tally) - keys_before) * (self._key_bytes + GROUP_OVERHEAD)
        return counted, rest

    def _tally_for(self, value: object) -> Tally | None:
        """Where batches sharing `value` are counted: None once COUNTED_VALUES are counted."""
        entry = self._counted.get(id(value))
        if entry:
            return entry[1]
        if self._count_repeats and len(self._counted) < COUNTED_VALUES:
            return Tally()
        return None

    def distinct_keys(self) -> int:
        return len(self._lists) + sum(len(tally) for _, tally in self._counted.values())

    def __bool__(self) -> bool:
        return self.pairs > 0

    def drain(self, sort: bool = False, value_key: Callable | None = None,
              ) -> Iterator[tuple[object, Iterable, int]]:
        """Empty the buffer as (key, values, number of values), in key order.

        The values are the key's list when it has only listed values, else an iterator. With
        `sort`, each key's values come in order (of `value_key` of each, if given).
        """
        if not self._lists and len(self._counted) == 1:  # a word count's: one value, counted
            return self._drain_counted(*next(iter(self._counted.values())))
        return self._drain_mixed(sort, value_key)

    def _drain_mixed(self, sort: bool, value_key: Callable | None,
                     ) -> Iterator[tuple[object, Iterable, int]]:
        counted = [(value, dict(tally.items())) for value, tally in self._counted.values()]
        keys = set(self._lists)
        for _, counts in counted:
            keys.update(counts)
        for key in sort_keys(keys):
            listed = self._lists.pop(key, None)
            runs = [(value, counts.pop(key)) for value, counts in counted if key in counts]
            if not runs:
                yield key, sort_values(key, listed, value_key) if sort else listed, len(listed)
                continue
            if sort and (len(runs) > 1 or listed):  # else one value repeated: in order
                yield key, _merged(key, runs, listed, value_key), \
                    sum(n for _, n in runs) + len(listed or ())
                continue
            parts: list = [repeat(value, n) for value, n in runs]
            if listed:
                parts.append(listed)
            yield key, chain.from_iterable(parts), sum(n for _, n in runs) + len(listed or ())
        self._clear()

    def _drain_counted(self, value: object, tally: Tally) -> Iterator[tuple[object, Iterable, int]]:
        """drain() of a buffer whose every pair held `value`: each key's values are `value`
        repeated, already in order."""
        items = sort_keys(tally.items(), key=first)
        self._clear()
        for key, count in items:
            yield key, repeat(value, count), count


def _merged(key: object, runs: list[tuple[object, int]], listed: list | None,
            value_key: Callable | None) -> Iterator:
    """A key's counted runs (each one value, repeated) and listed values, in value order."""
    first_of = (lambda run: value_key(run[0])) if value_key else first
    runs = sort_values(key, runs, first_of)
    counted = chain.from_iterable(repeat(value, n) for value, n in runs)
    if not listed:
        return counted
    return merge_values(key, [counted, sort_values(key, listed, value_key)], value_key)


def check_pairs(batch: list) -> None:
    try:
        if set(map(len, batch)) <= {2}:
            return
    except TypeError:
        pass
    bad = next(r for r in batch if not isinstance(r, tuple | list) or len(r) != 2)
    raise UserCodeError(f"mapper must yield (key, value) pairs; it yielded {bad!r:.80}")


def _hashable(key: object) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


def _value_size(value: object) -> int:
    if value.__class__ is int and -5 <= value <= 256 or value is None or value is True \
            or value is False:
        return 0
    return sys.getsizeof(value)
