"""How far the running task has got: a count of input blocks read and batches written.

The worker's heartbeat reports only when the count moves, so a task whose user code hangs (at
import, in the mapper, in the reducer) stops beating and is timed out after taskTimeoutSeconds.
"""

_moves = 0


def advance() -> None:
    global _moves
    _moves += 1


def moves() -> int:
    return _moves
