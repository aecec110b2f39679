"""Sorted runs: the on-disk and in-store form of intermediate data, and their k-way merge.

A run is a sequence of pickled batches; a batch is a list of (key, values) groups in key order.
One key may span several consecutive groups, so no group has to hold all of a key's values.
A map output file holds one run per partition back to back; its index gives each run's
[start, end) byte range. In a job with sorted values (spec.sortValues), the values a run holds
for a key, read across its groups, are sorted too: the run is sorted by (key, value).
"""

from __future__ import annotations

import heapq
import pickle
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, groupby
from operator import itemgetter
from typing import BinaryIO

from kubemr.engine import progress
from kubemr.errors import UserCodeError

BATCH_VALUES = 16384
PROTOCOL = pickle.HIGHEST_PROTOCOL
first = itemgetter(0)


class RunWriter:
    """Writes runs into one binary file, recording each run's byte range."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self._batch: list = []
        self._batch_values = 0
        self._start = f.tell()
        self.index: list[tuple[int, int]] = []
        self.records = 0

    def add(self, key: object, values: list) -> None:
        self._batch.append((key, values))
        self._batch_values += len(values)
        self.records += len(values)
        if self._batch_values >= BATCH_VALUES:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            progress.advance()
            pickle.dump(self._batch, self._f, PROTOCOL)
            self._batch = []
            self._batch_values = 0

    def end_run(self) -> None:
        self._flush()
        end = self._f.tell()
        self.index.append((self._start, end))
        self._start = end


def read_run(stream: BinaryIO) -> Iterator[tuple[object, list]]:
    """The (key, values) groups of one run, streamed batch by batch.

    Each batch was pickled on its own, with a memo of its own, so each is read by a fresh
    unpickler: one shared across batches would resolve a batch's back-references against an
    earlier batch's objects (and keep every batch alive). A batch read is progress: a reducer
    reading (or the merge skipping) a key of many values keeps the task's heartbeat going.
    """
    while True:
        try:
            batch = pickle.load(stream)
        except EOFError:
            return
        progress.advance()
        yield from batch


def _mixed_key_error(e: TypeError) -> UserCodeError:
    return UserCodeError(
        f"keys of different types cannot be sorted together ({e}); emit keys of one type "
        "(e.g. all str, or all int) throughout the job"
    )


def _mixed_value_error(key: object, e: TypeError) -> UserCodeError:
    return UserCodeError(
        f"values of key {key!r:.60} have different types and cannot be sorted together ({e}); "
        "emit values of one type for a key (or give a valueKey that orders them)"
    )


def _unorderable(e: TypeError) -> bool:
    return "not supported between instances" in str(e)


def sort_keys(keys: Iterable, key: Callable | None = None) -> list:
    try:
        return sorted(keys, key=key)
    except TypeError as e:
        raise _mixed_key_error(e) from None


def merge_runs(runs: list[Iterator[tuple[object, list]]]) -> Iterator[tuple[object, Iterator]]:
    """k-way merge of sorted runs: one (key, values iterator) per distinct key, in key order.

    The values are chained from the runs' groups lazily, so a key with more values than memory
    holds streams through. Consume each key's values before moving to the next key.
    """
    merged = heapq.merge(*runs, key=first) if len(runs) > 1 else (runs[0] if runs else iter(()))
    try:
        for key, groups in groupby(merged, key=first):
            yield key, chain.from_iterable(map(itemgetter(1), groups))
    except TypeError as e:
        if "not supported between instances" in str(e):
            raise _mixed_key_error(e) from None
        raise


def job_sorts_values(spec: dict, value_key: Callable | None) -> bool:
    """Whether a job delivers each key's values in order: spec.sortValues, or a valueKey."""
    return bool(spec.get("sortValues")) or value_key is not None


def sort_values(key: object, values: list, value_key: Callable | None) -> list:
    """Sort a key's values in place (by `value_key` of each, if given); return them."""
    try:
        values.sort(key=value_key)
        return values
    except TypeError as e:
        if _unorderable(e):
            raise _mixed_value_error(key, e) from None
        raise


def merge_values(key: object, sources: list[Iterable], value_key: Callable | None) -> Iterator:
    """One key's sorted value streams merged into one, lazily."""
    if len(sources) == 1:
        return iter(sources[0])
    return _checked_values(key, heapq.merge(*sources, key=value_key))


def _checked_values(key: object, values: Iterator) -> Iterator:
    try:
        yield from values
    except TypeError as e:
        if _unorderable(e):
            raise _mixed_value_error(key, e) from None
        raise


def merge_runs_sorted_values(runs: list[Iterator[tuple[object, list]]],
                             value_key: Callable | None = None,
                             ) -> Iterator[tuple[object, Iterator]]:
    """k-way merge of runs sorted by (key, value): one (key, values iterator) per distinct key,
    in key order, its values merged from every run that holds the key, in value order.

    A heap holds each run's next group; the runs whose next group has the smallest key each
    give that key's values. A key that each run holds in one group, with few values in all,
    has them sorted at once. Otherwise the runs' values are merged lazily, group by group, and
    what the consumer leaves is skipped a group at a time when it moves to the next key: a key
    with more values than memory holds streams through, read whole or in part (a top N).
    """
    heads = []  # [key, run number, values, run], one per unfinished run; run None once done
    for i, run in enumerate(runs):
        group = next(run, None)
        if group is not None:
            heads.append([group[0], i, group[1], run])
    try:
        heapq.heapify(heads)
        while heads:
            key = heads[0][0]
            holders = [heapq.heappop(heads)]
            while heads and heads[0][0] == key:
                holders.append(heapq.heappop(heads))
            firsts = [head[2] for head in holders]
            spanning = [_next_group(key, head) for head in holders]
            if not any(spanning) and (len(firsts) == 1 or
                                      sum(map(len, firsts)) <= BATCH_VALUES):
                values = firsts[0] if len(firsts) == 1 else sort_values(
                    key, list(chain.from_iterable(firsts)), value_key)
                yield key, iter(values)
            else:
                rests = [_value_lists(key, head) if more else iter(())
                         for head, more in zip(holders, spanning, strict=True)]
                yield key, merge_values(key, [chain(first, chain.from_iterable(rest))
                                              for first, rest in zip(firsts, rests, strict=True)],
                                        value_key)
                for rest in rests:
                    deque(rest, maxlen=0)  # what the consumer left of this key
            for head in holders:
                if head[3] is not None:
                    heapq.heappush(heads, head)
    except TypeError as e:
        if _unorderable(e):
            raise _mixed_key_error(e) from None
        raise


def _next_group(key: object, head: list) -> bool:
    """Move `head` to its run's next group (its run None if there is none); whether that group
    holds `key` too."""
    group = next(head[3], None)
    if group is None:
        head[3] = None
        return False
    head[0], head[2] = group
    return group[0] == key


def _value_lists(key: object, head: list) -> Iterator[list]:
    """The value lists of `key` in one run, from its head group on; leaves the head at the
    run's next key (its run None when the run is done)."""
    yield head[2]
    for group in head[3]:
        if group[0] != key:
            head[0], head[2] = group
            return
        yield group[1]
    head[3] = None
