"""Natural-language corpora for the benchmarks: English words drawn with their real frequencies.

The word list and frequencies come from the `wordfreq` package (Zipf-distributed English). Two
shapes: `long` lines of 4 to 18 words (about 60 bytes), and `short` lines of 2 to 9 words (about
30 bytes: plays, poems, chat logs, most log files), where the work around each line counts for
more. The text is generated once per shape and size and cached under ~/.cache/kubemr/bench/.
"""

from __future__ import annotations

import itertools
import os
import random

CACHE = os.path.expanduser(os.environ.get("KUBEMR_BENCH_CACHE", "~/.cache/kubemr/bench"))
BLOCK_BYTES = 16 << 20
WORDS_PER_LINE = {"long": (4, 18), "short": (2, 9)}


def _block(seed: int, shape: str) -> bytes:
    from wordfreq import top_n_list, word_frequency

    words = top_n_list("en", 30000)
    cum_weights = list(itertools.accumulate(word_frequency(w, "en") for w in words))
    rng = random.Random(seed)
    fewest, most = WORDS_PER_LINE[shape]
    lines = []
    size = 0
    while size < BLOCK_BYTES:
        n = rng.randint(fewest, most)
        line = " ".join(rng.choices(words, cum_weights=cum_weights, k=n))
        if rng.random() < 0.3:
            line = line[0].upper() + line[1:] + "."
        lines.append(line)
        size += len(line.encode()) + 1
    return ("\n".join(lines) + "\n").encode()


def corpus(total_bytes: int, files: int = 16, shape: str = "long") -> str:
    """A folder of `files` text files of about total_bytes in all (each at least one 16 MiB
    block), lines of the given shape; its path."""
    prefix = "corpus" if shape == "long" else f"corpus-{shape}"
    folder = os.path.join(CACHE, f"{prefix}-{total_bytes}-{files}")
    if os.path.isfile(os.path.join(folder, ".done")):
        return folder
    os.makedirs(folder, exist_ok=True)
    blocks = [_block(seed, shape) for seed in range(4)]
    per_file = total_bytes // files
    rng = random.Random(0)
    for i in range(files):
        with open(os.path.join(folder, f"text-{i:03d}.txt"), "wb") as f:
            written = 0
            while written < per_file:
                block = blocks[rng.randrange(len(blocks))]
                f.write(block)
                written += len(block)
    open(os.path.join(folder, ".done"), "w").close()
    return folder
