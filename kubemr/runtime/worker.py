"""The task entrypoint: `python -m kubemr.runtime.worker TASK.json` or `KUBEMR_TASK='{...}'`.

Runs one task attempt and commits it. On failure it exits non-zero and puts the error (the last
lines of the user's traceback) in the result file and the pod's termination message. With a
`log` URI in the task, the tail of all the attempt writes to stdout and stderr is stored there.

`--serve FD` (the local runner's) runs attempts of one job one after another instead, as
requests come on stdin, so that many small tasks do not each pay a process start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import traceback
from collections.abc import Iterator

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


def _beat_to(uri: str) -> None:
    """Rewrite the running attempt's .alive object at `uri` as the task makes progress
    (kubemr.engine.progress), every half KUBEMR_HEARTBEAT_SECONDS at most: its last-modified
    time stays within half a heartbeat of the task's last progress.

    The beat's time is the attempt's progress: user code that hangs stops it, and the scheduler
    fails the attempt as Timeout after taskTimeoutSeconds.
    """
    seconds = float(os.environ.get("KUBEMR_HEARTBEAT_SECONDS") or 0)
    if seconds <= 0:
        return
    from kubemr.engine import progress
    from kubemr.storage import store_for

    def beat() -> None:
        try:
            store_for(uri).write_bytes(uri, str(progress.moves()).encode())
        except Exception as e:  # a missed beat is not fatal; the timeout judges
            print(f"kubemr: heartbeat failed: {e}", file=sys.stderr)

    progress.beat_with(beat, seconds / 2)


def _stop_beating() -> None:
    from kubemr.engine import progress

    progress.beat_with(None)


def _alive_uri(task: dict) -> str:
    """Where the attempt's heartbeat goes: KUBEMR_PROGRESS_URI (the local runner's) if set."""
    from kubemr.engine.commit import alive_uri

    return os.environ.get("KUBEMR_PROGRESS_URI") or alive_uri(
        task["work"], task["type"], task["index"], task["attempt"])


def _raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubemr-worker", description=__doc__)
    parser.add_argument("task", nargs="?", help="task JSON file (default: $KUBEMR_TASK)")
    parser.add_argument("--result", help="write the outcome here as JSON")
    parser.add_argument("--serve", type=int, metavar="FD",
                        help="run the attempts requested on stdin, one JSON line each "
                             "({task, result, log, progress}), answering on FD as each ends")
    args = parser.parse_args(argv)
    if args.serve is not None:
        return serve(args.serve)
    if args.task:
        with open(args.task) as f:
            task = json.load(f)
    else:
        task = json.loads(os.environ["KUBEMR_TASK"])
    with _log_captured(task):
        _raise_open_file_limit()
        _beat_to(_alive_uri(task))
        return 0 if _attempt(task, args.result)["ok"] else 1


def serve(replies_fd: int) -> int:
    """Run attempts one after another as the local runner asks, each with its output in its
    own log file; answer on `replies_fd` as each one ends (its outcome is in its result file):
    `ready` for the next one, or `ending`.

    Each attempt starts as in a new process as far as kubemr's state goes: no user counters
    carried over, the job's inline code run afresh. After running out of memory the process
    ends, for the runner to start a fresh one.
    """
    from kubemr.engine.counters import take_user_counters
    from kubemr.engine.usercode import INLINE_MODULE

    _raise_open_file_limit()
    with os.fdopen(replies_fd, "w", buffering=1) as replies:
        for line in sys.stdin:
            request = json.loads(line)
            with open(request["task"]) as f:
                task = json.load(f)
            _output_to(request["log"])
            take_user_counters()
            sys.modules.pop(INLINE_MODULE, None)
            _beat_to(request.get("progress") or _alive_uri(task))
            with _log_captured(task):
                outcome = _attempt(task, request["result"])
            _stop_beating()
            sys.stdout.flush()
            sys.stderr.flush()
            if outcome.get("errorType") == "MemoryError":
                replies.write("ending\n")
                return 1
            replies.write("ready\n")
    return 0


@contextlib.contextmanager
def _log_captured(task: dict) -> Iterator[None]:
    """The tail of all the attempt writes to stdout and stderr stored at the task's `log` URI.
    First in an attempt, so that everything it writes is in its log (kubemr.runtime.logs)."""
    log = logs.capture(task.get("log"))
    try:
        yield
    finally:
        if log:
            log.close()


def _output_to(path: str) -> None:
    """Point file descriptors 1 and 2 (so C code and subprocesses too) at the file `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _attempt(task: dict, result: str | None) -> dict:
    from kubemr.runtime.attempt import run_task
    from kubemr.runtime.document import with_spec

    try:
        record = run_task(with_spec(task))
        outcome = {"ok": True, "commit": record}
    except Exception as e:
        outcome = {"ok": False, "error": error_tail(e), "errorType": type(e).__name__}
        if isinstance(e, MapOutputLost):
            outcome["lostMaps"] = e.lost
        print(outcome["error"], file=sys.stderr)
    if result:
        with open(result, "w") as f:
            json.dump(outcome, f)
    if os.path.exists(TERMINATION_LOG) and os.access(TERMINATION_LOG, os.W_OK):
        with open(TERMINATION_LOG, "w") as f:
            f.write(termination_message(outcome))
    return outcome


if __name__ == "__main__":
    sys.exit(main())
