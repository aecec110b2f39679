"""A natural-language corpus for the benchmarks: English words drawn with their real frequencies.

The word list and frequencies come from the `wordfreq` package (Zipf-distributed English). The
text is generated once per size and cached under ~/.cache/kubemr/bench/.
"""

from __future__ import annotations

import itertools
import os
import random

CACHE = os.path.expanduser(os.environ.get("KUBEMR_BENCH_CACHE", "~/.cache/kubemr/bench"))
BLOCK_BYTES = 16 << 20


def _block(seed: int) -> bytes:
    from wordfreq import top_n_list, word_frequency

    words = top_n_list("en", 30000)
    cum_weights = list(itertools.accumulate(word_frequency(w, "en") for w in words))
    rng = random.Random(seed)
    lines = []
    size = 0
    while size < BLOCK_BYTES:
        n = rng.randint(4, 18)
        line = " ".join(rng.choices(words, cum_weights=cum_weights, k=n))
        if rng.random() < 0.3:
            line = line[0].upper() + line[1:] + "."
        lines.append(line)
        size += len(line.encode()) + 1
    return ("\n".join(lines) + "\n").encode()


def corpus(total_bytes: int, files: int = 16) -> str:
    """A folder of `files` text files of about total_bytes in all; its path."""
    folder = os.path.join(CACHE, f"corpus-{total_bytes}-{files}")
    if os.path.isfile(os.path.join(folder, ".done")):
        return folder
    os.makedirs(folder, exist_ok=True)
    blocks = [_block(seed) for seed in range(4)]
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
