"""Input formats (split -> (key, value) records) and output formats ((key, value) -> lines).

A split is one or more parts (byte ranges of objects), read one after another. Text and jsonl
parts follow Hadoop's LineRecordReader rule: a part owns the lines that start in (start, end],
plus the line at 0 for the first part of an object. So a part that starts mid-line skips to the
next line start, and its last line is read past `end`: every line is read exactly once.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import accumulate, chain, starmap
from typing import BinaryIO

from kubemr.engine import progress
from kubemr.engine.plan import Part, Split
from kubemr.errors import UserCodeError
from kubemr.storage import StreamWrapper, dataset, store_for

BLOCK = 1 << 18  # a block's lines, offsets and texts are held at once
READ_AHEAD = 16  # small remote objects of a packed split fetched ahead of the one being read
FETCH_THREADS = 8
SMALL_OBJECT = 1 << 20  # at most READ_AHEAD of these are held at once


class InputReader:
    """Reads one split, part after part; counts the bytes it took from storage.

    Each part is read on its own, so a record never spans two objects, and a record's key is
    its own object's: a line's byte offset in its object, a whole file's name under the input
    prefix.
    """

    def __init__(self, split: Split, input_format: str):
        self.split = split
        self.format = input_format
        self.bytes_read = 0
        self.read_seconds = 0.0  # waiting on storage, for the attempt's timings
        self.records = 0

    def __iter__(self) -> Iterator[tuple]:
        parts = self._fetching(self.split.parts)
        if self.format == "whole-file":
            return starmap(self._whole_file, parts)
        if self.format == "jsonl":
            return chain.from_iterable(self._jsonl(p, self._lines(p, f, decode=False))
                                       for p, f in parts)
        return chain.from_iterable(self._lines(p, f, decode=True) for p, f in parts)

    def _fetching(self, parts: tuple[Part, ...]) -> Iterator[tuple[Part, Future | None]]:
        """Each part, with its bytes on their way if it is a small object in a remote store:
        a packed split's small objects are fetched up to READ_AHEAD at once, where one
        after another each GET would wait out its own round trip."""
        if sum(1 for p in parts if _fetch_ahead(p)) < 2:
            yield from ((p, None) for p in parts)
            return
        pool = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="kubemr-read-ahead")
        try:
            window: deque[tuple[Part, Future | None]] = deque()
            for part in parts:
                window.append((part, pool.submit(store_for(part.uri).read_bytes, part.uri)
                               if _fetch_ahead(part) else None))
                if len(window) >= READ_AHEAD:
                    yield window.popleft()
            yield from window
        finally:
            pool.shutdown(cancel_futures=True)

    def _lines(self, part: Part, fetched: Future | None,
               decode: bool) -> Iterator[tuple[int, bytes | str]]:
        return chain.from_iterable(self._line_blocks(part, fetched, decode))

    def _open(self, part: Part, fetched: Future | None = None) -> BinaryIO:
        if fetched is not None:
            stream = io.BytesIO(fetched.result())
        elif part.dataset:
            stream = dataset.open_file(part.dataset, part.name,
                                       0 if part.uri.endswith(".gz") else part.start)
        else:
            stream = store_for(part.uri).open_range(
                part.uri, 0 if part.uri.endswith(".gz") else part.start)
        if part.uri.endswith(".gz"):
            return gzip.GzipFile(fileobj=_Counting(stream, self))
        return _Counting(stream, self)

    def _whole_file(self, part: Part, fetched: Future | None) -> tuple[str, str]:
        with self._open(part, fetched) as stream:
            data = stream.read()
        self.records += 1
        progress.advance()
        return part.name, data.decode("utf-8", errors="replace")

    def _line_blocks(self, part: Part, fetched: Future | None,
                     decode: bool) -> Iterator[Iterator[tuple[int, bytes | str]]]:
        """(byte offset, line without its newline) for every line this part owns, a block
        at a time (so that iterating a block's lines stays in C).

        With `decode`, lines are text: UTF-8 (invalid bytes replaced), without a final CR.
        """
        gz = part.uri.endswith(".gz")
        start, end = (0, float("inf")) if gz else (part.start, part.end)
        if part.size == 0 and not gz:
            return  # an empty object: nothing to open
        with self._open(part, fetched) as stream:
            pos = start
            pending = b""
            skipping = start != 0
            while True:
                block = stream.read(BLOCK)
                progress.advance()
                if not block:
                    break
                data = pending + block if pending else block
                if skipping:
                    newline = data.find(b"\n")
                    if newline < 0:
                        pos += len(data)
                        pending = b""
                        continue
                    pos += newline + 1
                    data = data[newline + 1:]
                    skipping = False
                values, offsets, pending = split_lines(data, pos, decode)
                owned = bisect_right(offsets, end, 0, len(values))
                self.records += owned
                if owned == len(values):
                    yield zip(offsets, values, strict=False)  # the offsets have one more
                else:
                    yield zip(offsets[:owned], values[:owned], strict=True)
                if owned < len(values):
                    return
                pos = offsets[-1]
            if pending and not skipping and pos <= end:
                self.records += 1
                yield [(pos, _decode(pending) if decode else pending)]

    def _jsonl(self, part: Part,
               lines: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, object]]:
        for offset, line in lines:
            if not line.strip():
                self.records -= 1
                continue
            try:
                yield offset, json.loads(line)
            except ValueError as e:
                raise UserCodeError(
                    f"input {part.uri} at byte {offset}: not a JSON value: {e}"
                ) from None


def _fetch_ahead(part: Part) -> bool:
    """A whole small object in a remote store (local files are read as they come)."""
    return (not part.uri.startswith("file://") and not part.dataset and part.start == 0
            and 0 < part.end == part.size <= SMALL_OBJECT)


def py_split_lines(data: bytes, offset: int, decode: bool) -> tuple[list, list[int], bytes]:
    """The complete lines of `data` (bytes, or with `decode` text without a final CR), the
    byte offset of each line's start and of the end of the last one (`offset` being that of
    data's first byte), and the bytes after the last newline.

    The Python form of kubemr.engine._lines.split_lines (kubemr/engine/_lines.c), used where it
    was not compiled.
    """
    values, lengths, pending = _split_lines(data, decode)
    return values, list(accumulate(map((1).__add__, lengths), initial=offset)), pending


try:
    from kubemr.engine._lines import split_lines
except ImportError:  # installed without a C compiler
    split_lines = py_split_lines
COMPILED = split_lines is not py_split_lines


def _split_lines(data: bytes, decode: bool) -> tuple[list, list[int], bytes]:
    """py_split_lines, with the byte length of each line instead of its offset.

    Text is decoded and split once: a line's byte length is its length in characters, or for
    the few lines that are not ASCII, that of the line encoded again. Invalid UTF-8 (replaced,
    so that its byte count is lost in the text) is split as bytes first, then decoded line by
    line.
    """
    if decode and data.isascii():
        lines = data.decode("ascii").split("\n")
        pending = lines.pop().encode("ascii")
        return _without_cr(lines, data), list(map(len, lines)), pending
    complete = data.rfind(b"\n") + 1
    text = data[:complete].decode("utf-8", errors="replace") if decode else ""
    if not decode or "\ufffd" in text:
        lines = data.split(b"\n")
        pending = lines.pop()
        lengths = list(map(len, lines))
        return ([_decode(line) for line in lines] if decode else lines), lengths, pending
    lines = text.split("\n")
    lines.pop()  # after the last newline: nothing
    lengths = list(map(len, lines))
    ascii_lines = list(map(str.isascii, lines))
    line = -1
    with contextlib.suppress(ValueError):  # when no line is left that is not ASCII
        while True:
            line = ascii_lines.index(False, line + 1)
            lengths[line] = len(lines[line].encode("utf-8"))
    return _without_cr(lines, data), lengths, data[complete:]


def _without_cr(lines: list[str], data: bytes) -> list[str]:
    if b"\r" not in data:
        return lines
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _decode(line: bytes) -> str:
    if line.endswith(b"\r"):
        line = line[:-1]
    return line.decode("utf-8", errors="replace")


class _Counting(StreamWrapper):
    """Wraps a stream to count the bytes read through it."""

    def __init__(self, stream: BinaryIO, reader: InputReader):
        super().__init__(stream)
        self._reader = reader

    def read(self, n: int = -1) -> bytes:
        started = time.perf_counter()
        data = self._stream.read(n)
        self._reader.read_seconds += time.perf_counter() - started
        self._reader.bytes_read += len(data)
        return data

    def readinto(self, b) -> int:
        started = time.perf_counter()
        n = self._stream.readinto(b)
        self._reader.read_seconds += time.perf_counter() - started
        self._reader.bytes_read += n
        return n


def text_line(key: object, value: object) -> str:
    """key<TAB>value, each as str(); a key or value holding a tab or newline cannot round-trip."""
    return f"{key}\t{value}\n"


def jsonl_line(key: object, value: object) -> str:
    try:
        return json.dumps([key, value], ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as e:
        raise UserCodeError(
            f"output format jsonl: record ({key!r:.60}, {value!r:.60}) is not JSON: {e}"
        ) from None


OUTPUT_FORMATS = {"text": text_line, "jsonl": jsonl_line}
