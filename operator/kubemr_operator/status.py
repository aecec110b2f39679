"""Job status pieces: timestamps and metav1.Condition lists."""

from __future__ import annotations

from datetime import UTC, datetime

CONDITION_TYPES = ("Progressing", "Complete", "Failed", "Suspended")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def conditions(old: list[dict], phase: str, message: str, generation: int,
               reason: str | None = None) -> list[dict]:
    """Progressing, Complete and Failed for `phase`; a transition time moves only on change."""
    wanted = {
        "Progressing": ("True" if phase not in ("Succeeded", "Failed") else "False",
                        phase if phase not in ("Succeeded", "Failed") else "Finished"),
        "Complete": ("True" if phase == "Succeeded" else "False",
                     "JobSucceeded" if phase == "Succeeded" else "NotComplete"),
        "Failed": ("True" if phase == "Failed" else "False",
                   (reason or "JobFailed") if phase == "Failed" else "NotFailed"),
        "Suspended": ("True" if phase == "Suspended" else "False",
                      "JobSuspended" if phase == "Suspended" else "NotSuspended"),
    }
    by_type = {c["type"]: c for c in old}
    result = []
    for kind in CONDITION_TYPES:
        value, why = wanted[kind]
        previous = by_type.get(kind, {})
        changed = previous.get("status") != value
        result.append({
            "type": kind,
            "status": value,
            "reason": why,
            "message": message[-1000:] if value == "True" and kind != "Progressing" else "",
            "lastTransitionTime": now_iso() if changed else previous["lastTransitionTime"],
            "observedGeneration": generation,
        })
    return result
