"""Input formats (split -> (key, value) records) and output formats ((key, value) -> lines).

Text and jsonl splits follow Hadoop's LineRecordReader rule: a split owns the lines that start
in (start, end], plus the line at 0 for the first split. So a split that starts mid-line skips to
the next line start, and its last line is read past `end`: every line is read exactly once.
"""

from __future__ import annotations

import gzip
import json
from bisect import bisect_right
from collections.abc import Iterator
from itertools import accumulate, chain
from typing import BinaryIO

from kubemr.engine import progress
from kubemr.engine.plan import Split
from kubemr.errors import UserCodeError
from kubemr.storage import StreamWrapper, store_for

BLOCK = 1 << 18  # a block's lines, offsets and texts are held at once


class InputReader:
    """Reads one split; counts the bytes it took from storage."""

    def __init__(self, split: Split, input_format: str):
        self.split = split
        self.format = input_format
        self.bytes_read = 0
        self.records = 0

    def __iter__(self) -> Iterator[tuple]:
        if self.format == "whole-file":
            return self._whole_file()
        if self.format == "jsonl":
            return self._jsonl(self._lines(decode=False))
        return self._lines(decode=True)

    def _lines(self, decode: bool) -> Iterator[tuple[int, bytes | str]]:
        return chain.from_iterable(self._line_blocks(decode))

    def _open(self) -> BinaryIO:
        s = self.split
        if s.uri.endswith(".gz"):
            return gzip.GzipFile(fileobj=_Counting(store_for(s.uri).open_range(s.uri), self))
        return _Counting(store_for(s.uri).open_range(s.uri, s.start), self)

    def _whole_file(self) -> Iterator[tuple]:
        with self._open() as stream:
            data = stream.read()
        name = self.split.uri[len(self.split.base):] or self.split.uri.rsplit("/", 1)[-1]
        self.records += 1
        progress.advance()
        yield name, data.decode("utf-8", errors="replace")

    def _line_blocks(self, decode: bool) -> Iterator[Iterator[tuple[int, bytes | str]]]:
        """(byte offset, line without its newline) for every line this split owns, a block
        at a time (so that iterating a block's lines stays in C).

        With `decode`, lines are text: UTF-8 (invalid bytes replaced), without a final CR.
        """
        s = self.split
        gz = s.uri.endswith(".gz")
        start, end = (0, float("inf")) if gz else (s.start, s.end)
        with self._open() as stream:
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
                lines = data.split(b"\n")
                pending = lines.pop()
                offsets = list(accumulate(map((1).__add__, map(len, lines)), initial=pos))
                owned = bisect_right(offsets, end, 0, len(lines))
                values = _decode_lines(data[:offsets[-1] - pos], lines) if decode else lines
                self.records += owned
                yield zip(offsets[:owned], values[:owned], strict=True)
                if owned < len(lines):
                    return
                pos = offsets[-1]
            if pending and not skipping and pos <= end:
                self.records += 1
                yield [(pos, _decode(pending) if decode else pending)]

    def _jsonl(self, lines: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, object]]:
        for offset, line in lines:
            if not line.strip():
                self.records -= 1
                continue
            try:
                yield offset, json.loads(line)
            except ValueError as e:
                raise UserCodeError(
                    f"input {self.split.uri} at byte {offset}: not a JSON value: {e}"
                ) from None


def _decode_lines(complete: bytes, lines: list[bytes]) -> list[str]:
    """Decode `lines`, the lines of `complete` (each with its newline), in one pass."""
    texts = complete[:-1].decode("utf-8", errors="replace").split("\n") if lines else []
    if len(texts) != len(lines):  # not expected: UTF-8 decoding never joins or splits lines
        return [_decode(line) for line in lines]
    if b"\r" in complete:
        texts = [t[:-1] if t.endswith("\r") else t for t in texts]
    return texts


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
        data = self._stream.read(n)
        self._reader.bytes_read += len(data)
        return data

    def readinto(self, b) -> int:
        n = self._stream.readinto(b)
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
