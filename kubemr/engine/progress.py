"""How far the running task has got: a count of input blocks read and batches written.

The worker's heartbeat (kubemr.runtime.worker) beats from here as the count moves, on the
task's own thread, so a task whose user code hangs (at import, in the mapper, in the reducer)
stops beating and is timed out after taskTimeoutSeconds. No thread beats for it: a process with
a second thread takes a lock in every malloc and free (glibc's), which costs a word count 5%.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_moves = 0
_beat: Callable[[], None] | None = None
_every = 0.0
_due = float("inf")


def advance() -> None:
    global _moves, _due
    _moves += 1
    if _beat is not None and time.monotonic() >= _due:
        _due = time.monotonic() + _every
        _beat()


def beat_with(beat: Callable[[], None] | None, seconds: float = 0.0) -> None:
    """From now on, call `beat` as the count moves, at most every `seconds` (the first time
    `seconds` from now); None: no more beats."""
    global _beat, _every, _due
    _beat, _every = beat, seconds
    _due = time.monotonic() + seconds if beat else float("inf")


def moves() -> int:
    return _moves
