"""Counters: named totals that tasks add to and the job sums over committed attempts."""

from __future__ import annotations

from collections import Counter

BUILTIN_GROUP = "kubemr"
USER_GROUP = "user"

_user_counters: Counter = Counter()


def increment_counter(name: str, amount: int = 1) -> None:
    """Add `amount` to the user counter `name` of the running task."""
    _user_counters[name] += amount


def take_user_counters() -> dict[str, int]:
    """The user counters of this task so far, clearing them for the next task."""
    counters = dict(_user_counters)
    _user_counters.clear()
    return counters


def add(total: dict[str, dict[str, int]], more: dict[str, dict[str, int]]) -> None:
    """Add the grouped counters `more` into `total`."""
    for group, values in more.items():
        target = total.setdefault(group, {})
        for name, value in values.items():
            target[name] = target.get(name, 0) + value
