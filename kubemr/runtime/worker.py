"""The task entrypoint: `python -m kubemr.runtime.worker TASK.json` or `KUBEMR_TASK='{...}'`.

Runs one task attempt and commits it. On failure it exits non-zero and puts the error (the last
lines of the user's traceback) in the result file and the pod's termination message. With a
`log` URI in the task, the tail of all the attempt writes to stdout and stderr is stored there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback

from kubemr.errors import KubemrError, MapOutputLost
from kubemr.runtime import logs

TERMINATION_LOG = "/dev/termination-log"
TAIL_LINES = 12


def error_tail(e: BaseException) -> str:
    if isinstance(e, KubemrError):
        return str(e)
    lines = traceback.format_exception(type(e), e, e.__traceback__)
    text = "".join(lines).rstrip().splitlines()
    return "\n".join(text[-TAIL_LINES:])[-3000:]


def termination_message(outcome: dict) -> str:
    """The outcome as the pod's termination message (at most 4 KiB, so no run index)."""
    if outcome.get("ok"):
        record = {k: v for k, v in outcome["commit"].items() if k != "index"}
        return json.dumps({"ok": True, "commit": record})[:4000]
    return json.dumps(outcome)[:4000]


def _start_heartbeat(task: dict) -> None:
    """Every KUBEMR_HEARTBEAT_SECONDS, rewrite the attempt's .alive object if the task made
    progress since the last beat (records read or written), from a thread.

    The beat's time is the attempt's progress: user code that hangs stops it, and the scheduler
    fails the attempt as Timeout after taskTimeoutSeconds. KUBEMR_PROGRESS_URI (the local
    runner's) overrides where the beat goes.
    """
    seconds = float(os.environ.get("KUBEMR_HEARTBEAT_SECONDS") or 0)
    if seconds <= 0:
        return
    import threading

    from kubemr.engine import progress
    from kubemr.engine.commit import alive_uri
    from kubemr.storage import store_for

    uri = os.environ.get("KUBEMR_PROGRESS_URI") or alive_uri(
        task["work"], task["type"], task["index"], task["attempt"])

    def beat() -> None:
        reported = 0
        while True:
            time.sleep(seconds)
            moves = progress.moves()
            if moves == reported:
                continue
            try:
                store_for(uri).write_bytes(uri, str(moves).encode())
                reported = moves
            except Exception as e:  # a missed beat is not fatal; the timeout judges
                print(f"kubemr: heartbeat failed: {e}", file=sys.stderr)

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()


def _raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubemr-worker", description=__doc__)
    parser.add_argument("task", nargs="?", help="task JSON file (default: $KUBEMR_TASK)")
    parser.add_argument("--result", help="write the outcome here as JSON")
    args = parser.parse_args(argv)
    if args.task:
        with open(args.task) as f:
            task = json.load(f)
    else:
        task = json.loads(os.environ["KUBEMR_TASK"])
    # First, so that everything the attempt writes is in its log (kubemr.runtime.logs).
    log = logs.capture(task.get("log"))
    try:
        return _attempt(task, args.result)
    finally:
        if log:
            log.close()


def _attempt(task: dict, result: str | None) -> int:
    from kubemr.runtime.attempt import run_task
    from kubemr.runtime.document import with_spec

    _raise_open_file_limit()
    _start_heartbeat(task)
    try:
        record = run_task(with_spec(task))
        outcome = {"ok": True, "commit": record}
        code = 0
    except Exception as e:
        outcome = {"ok": False, "error": error_tail(e), "errorType": type(e).__name__}
        if isinstance(e, MapOutputLost):
            outcome["lostMaps"] = e.lost
        print(outcome["error"], file=sys.stderr)
        code = 1
    if result:
        with open(result, "w") as f:
            json.dump(outcome, f)
    if os.path.exists(TERMINATION_LOG) and os.access(TERMINATION_LOG, os.W_OK):
        with open(TERMINATION_LOG, "w") as f:
            f.write(termination_message(outcome))
    return code


if __name__ == "__main__":
    sys.exit(main())
