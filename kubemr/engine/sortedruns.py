"""Sorted runs: the on-disk and in-store form of intermediate data, and their k-way merge.

A run is a sequence of pickled batches; a batch is a list of (key, values) groups in key order.
One key may span several consecutive groups, so no group has to hold all of a key's values.
A map output file holds one run per partition back to back; its index gives each run's
[start, end) byte range.
"""

from __future__ import annotations

import heapq
import pickle
from collections.abc import Iterable, Iterator
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
    earlier batch's objects (and keep every batch alive).
    """
    while True:
        try:
            batch = pickle.load(stream)
        except EOFError:
            return
        yield from batch


def _mixed_key_error(e: TypeError) -> UserCodeError:
    return UserCodeError(
        f"keys of different types cannot be sorted together ({e}); emit keys of one type "
        "(e.g. all str, or all int) throughout the job"
    )


def sort_keys(keys: Iterable) -> list:
    try:
        return sorted(keys)
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
