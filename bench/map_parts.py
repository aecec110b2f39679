"""Two parts of a map task, each measured inside one process against what it adds to:

    python bench/map_parts.py [--shape long|short] [--rounds 4]

- the tally: the word count's mapper over 1-MiB pieces of the corpus, its pairs counted by
  kubemr's Tally (as a map task does) against the same pairs dropped as they come;
- the line splitter: a 256-KiB block cut into lines and offsets by kubemr.engine._lines against
  its Python form, on the corpus as it is (a few lines hold characters that are not ASCII, as
  real text does) and on the corpus with those characters replaced.

Each piece runs once per round in every configuration, in turn; a configuration's time is the
sum over pieces of its fastest round (this machine's speed drifts: a piece's fastest run is the
one least disturbed).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from collections.abc import Callable
from itertools import chain, starmap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from corpus import corpus  # noqa: E402
from wordcount import SOURCE, files_of  # noqa: E402

from kubemr.engine import formats  # noqa: E402
from kubemr.engine.mapbuffer import COMPILED, Tally  # noqa: E402

PIECE = 1 << 20


def fastest(configs: dict[str, Callable], pieces: list, rounds: int) -> dict[str, float]:
    """Each configuration's seconds: over the pieces, the sum of each piece's fastest round."""
    best = {name: [float("inf")] * len(pieces) for name in configs}
    order = list(configs)
    for r in range(rounds):
        for i, piece in enumerate(pieces):
            for name in order if (i + r) % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                configs[name](piece)
                best[name][i] = min(best[name][i], time.perf_counter() - started)
    return {name: sum(times) for name, times in best.items()}


def cut(data: bytes, size: int) -> list[bytes]:
    """`data` in pieces of about `size` bytes, each ending at a newline."""
    pieces, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start + size) + 1 or len(data)
        pieces.append(data[start:end])
        start = end
    return pieces


def tally(data: bytes, rounds: int) -> None:
    namespace: dict = {}
    exec(SOURCE, namespace)
    mapper = namespace["mapper"]
    pieces = [formats.py_split_lines(piece, 0, True)[0] for piece in cut(data, PIECE)]
    counts = Tally()
    counts.add([("", 1)], 1)

    def pairs(lines: list[str]):
        return chain.from_iterable(starmap(mapper, enumerate(lines)))

    def counted(lines: list[str]) -> None:
        source = pairs(lines)
        while counts.pump(source, 1, 4096)[0] == 4096:
            pass

    def dropped(lines: list[str]) -> None:
        collections.deque(pairs(lines), maxlen=0)

    seconds = fastest({"dropped": dropped, "counted": counted}, pieces, rounds)
    print(f"tally ({'compiled' if COMPILED else 'Python'}), {len(pieces)} pieces of 1 MiB: "
          f"pairs dropped {seconds['dropped']:.3f} s, counted {seconds['counted']:.3f} s: "
          f"counting adds {seconds['counted'] / seconds['dropped'] - 1:.1%} to the mapper")


def splitter(data: bytes, rounds: int) -> None:
    blocks = cut(data, formats.BLOCK)
    wide = sum(not b.isascii() for b in blocks)
    ascii_blocks = [b.decode("utf-8", "replace").encode("ascii", "replace") for b in blocks]
    compiled = formats.COMPILED
    for label, pieces in ((f"as it is ({wide} of {len(blocks)} blocks hold non-ASCII)", blocks),
                          ("non-ASCII replaced", ascii_blocks)):
        configs = {"python": lambda b: formats.py_split_lines(b, 0, True)}
        if compiled:
            configs["compiled"] = lambda b: formats.split_lines(b, 0, True)
        seconds = fastest(configs, pieces, rounds)
        per_block = {name: s / len(pieces) * 1e3 for name, s in seconds.items()}
        print(f"line splitter, corpus {label}: "
              + ", ".join(f"{name} {ms:.3f} ms" for name, ms in per_block.items())
              + " a block" + ("" if compiled else " (kubemr.engine._lines not compiled)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=("long", "short"), default="long")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    folder = corpus(128 << 20, 8, args.shape)
    with open(files_of(folder)[0], "rb") as f:
        data = f.read()
    print(f"{args.shape} lines: {folder}, {len(data):,} bytes of it")
    tally(data, args.rounds)
    splitter(data, args.rounds)


if __name__ == "__main__":
    main()
