"""Each task attempt's log: the tail of its stdout and stderr, kept in the store.

    {base}/_logs/{namespace}/{name}-{uid8}/map-00003/attempt-2.log

On the cluster `base` is the operator's work URI (the chart's workUri). The logs are kept apart
from the job's work prefix ({base}/{namespace}/{name}-{uid8}/, deleted when the job ends), so
they stay until the job itself is deleted, by hand or by ttlSecondsAfterFinished; `_logs` is no
namespace's name (those have no underscore). An attempt's log is at most LOG_LIMIT bytes: the
last part of what it wrote, after a line saying how much came before.

Capture: the worker points its file descriptors 1 and 2 at pipes that a small forked copier
process reads. The copier writes every byte on to the original stdout or stderr (the pod's log,
as before), keeps the last LOG_LIMIT bytes in memory shared with the worker, and uploads them
while the worker runs (every few seconds, when they grew); the worker uploads them when it ends
and on SIGTERM. Being file descriptors, output from C code and from subprocesses is caught as
well as Python's; being another process, the copier never waits for the worker's GIL, and the
worker keeps one thread (in a process that ever had two, every malloc and free takes a lock).
"""

from __future__ import annotations

import mmap
import os
import select
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable

from kubemr.errors import NotFound

LOG_LIMIT = 1 << 20
LOGS_DIR = "_logs"
UPLOAD_SECONDS = 10.0  # without KUBEMR_HEARTBEAT_SECONDS; never more often than every second
DRAIN_SECONDS = 1.0  # once the worker is done, output still coming is copied for this long
STORE_SECONDS = 30  # the longest the last upload may hold up the end of the attempt
_CHUNK = 1 << 16


def _join(prefix: str, *names: str) -> str:
    return "/".join([prefix.rstrip("/"), *names])


def job_logs_uri(base: str, namespace: str, name: str, uid: str) -> str:
    """Where a cluster job's attempt logs are kept."""
    return _join(base, LOGS_DIR, namespace, f"{name}-{uid[:8]}")


def attempt_log_uri(logs: str, task_type: str, index: int, attempt: int) -> str:
    return _join(logs, f"{task_type}-{index:05d}", f"attempt-{attempt}.log")


def parse_task(name: str) -> tuple[str, int]:
    """("map", 3) of a task named map-3 (or map-00003)."""
    kind, _, index = name.partition("-")
    if kind not in ("map", "combine", "reduce") or not index.isdigit():
        raise NotFound(f"no task is named {name!r}: name one like map-3, combine-2 or reduce-0")
    return kind, int(index)


def stored_attempts(logs: str, task_type: str, index: int) -> dict[int, str]:
    """The attempts of a task that have a log under `logs`: number -> URI."""
    under = f"{task_type}-{index:05d}/"
    return {number: uri for (_, _, number), uri in every_stored_attempt(logs, under).items()}


def every_stored_attempt(logs: str, under: str = "") -> dict[tuple[str, int, int], str]:
    """The attempts with a log under `logs` (only those under `logs`/`under` when given):
    (task type, index, number) -> URI."""
    from kubemr.storage import store_for

    base = logs.rstrip("/") + "/"
    found = {}
    for obj in store_for(base).list(base + under):
        task, _, name = obj.uri[len(base):].partition("/")
        kind, _, index = task.partition("-")
        number = name[len("attempt-"):-len(".log")]
        if kind in ("map", "reduce") and index.isdigit() and name.startswith("attempt-") \
                and name.endswith(".log") and number.isdigit():
            found[kind, int(index), int(number)] = obj.uri
    return found


def render(total: int, tail: bytes, limit: int = LOG_LIMIT) -> bytes:
    """The log as stored: `tail`, the last bytes of `total` written, in at most `limit` bytes;
    when the start is gone, a line saying so, then the tail from its first whole line."""
    if total <= len(tail) and len(tail) <= limit:
        return tail
    note = (f"[kubemr: this attempt wrote {total} bytes; the last part follows, "
            f"at most {limit} bytes in all]\n").encode()
    tail = tail[len(tail) - max(0, limit - len(note)):]
    newline = tail.find(b"\n")
    if 0 <= newline < len(tail) - 1:
        tail = tail[newline + 1:]
    return note + tail


class _Ring:
    """The last `size` bytes written, in memory shared by the copier and the worker.

    A seqlock: the header holds the bytes written in all twice, the first count raised before
    the data is written and the second after, so a reader knows which bytes it read whole."""

    _HEADER = struct.Struct("QQ")  # (written once this write is done, written and done)

    def __init__(self, size: int):
        self.size = size
        # An anonymous shared mapping: the forked copier writes what the worker reads.
        self.map = mmap.mmap(-1, self._HEADER.size + size)

    def _counts(self) -> tuple[int, int]:
        return self._HEADER.unpack_from(self.map, 0)

    def total(self) -> int:
        return self._counts()[1]

    def append(self, data: bytes) -> None:
        """(The copier's.)"""
        total = self.total()
        kept = data[-self.size:]
        start = (total + len(data) - len(kept)) % self.size
        first = min(len(kept), self.size - start)
        base = self._HEADER.size
        self._HEADER.pack_into(self.map, 0, total + len(data), total)
        self.map[base + start:base + start + first] = kept[:first]
        if first < len(kept):
            self.map[base:base + len(kept) - first] = kept[first:]
        self._HEADER.pack_into(self.map, 0, total + len(data), total + len(data))

    def snapshot(self) -> tuple[int, bytes]:
        """(bytes written in all, the last of them that the ring holds), whole."""
        base = self._HEADER.size
        for _ in range(100):  # until no write came during the copy
            done = self.total()
            raw = self.map[base:base + self.size]
            begun = self._counts()[0]
            if begun == done:
                break
        valid = max(0, min(done, self.size - (begun - done)))  # not overwritten meanwhile
        if valid == 0:
            return done, b""
        end = done % self.size
        start = (done - valid) % self.size
        return done, raw[start:end] if start < end else raw[start:] + raw[:end]


def _write_all(fd: int, data: bytes) -> bool:
    try:
        while data:
            data = data[os.write(fd, data):]
        return True
    except OSError:  # the original stdout is gone: keep capturing
        return False


class _StoreTimedOut(BaseException):
    """A log upload outlasted STORE_SECONDS. Not an Exception: an S3 client's retries and
    `except Exception` would take it for a failed request and send it again, for minutes."""


def _within_store_seconds(store: Callable[[int, bytes], bool], total: int, tail: bytes) -> bool:
    """(The copier's.) store(total, tail), given up after STORE_SECONDS: the output it copies
    waits meanwhile."""
    def give_up(signum, frame) -> None:
        raise _StoreTimedOut

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(STORE_SECONDS)
    try:
        return store(total, tail)
    except _StoreTimedOut:
        print(f"kubemr: storing this attempt's log took over {STORE_SECONDS}s; trying again "
              "later", file=sys.stderr, flush=True)
        return False
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _copy(ring: _Ring, sources: dict[int, int], control: int,
          store: Callable[[int, bytes], bool] | None = None, every: float = UPLOAD_SECONDS,
          ) -> bool:
    """(The copier's loop.) Copy each pipe to its original destination and into the ring,
    until every writer is gone, or for DRAIN_SECONDS once `control` closed; until then, every
    `every` seconds while the ring grew, `store` its (total, tail). Whether the worker went
    without saying it was done (it wrote to `control` first if it was)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    alive = dict(sources)
    done, deadline = False, None
    stored, due = 0, time.monotonic() + every
    while sources:
        watched = [*sources, control] if deadline is None else list(sources)
        if deadline is not None:
            timeout = max(0.0, deadline - time.monotonic())
        else:
            timeout = max(0.0, due - time.monotonic()) if store else None
        ready, _, _ = select.select(watched, [], [], timeout)
        if store and deadline is None and time.monotonic() >= due:
            due = time.monotonic() + every
            if ring.total() != stored:
                total, tail = ring.snapshot()
                stored = total if _within_store_seconds(store, total, tail) else stored
        if not ready and deadline is not None:
            break
        for fd in ready:
            if fd == control:
                if os.read(control, 16):
                    done = True
                else:  # closed: the worker is done, or gone
                    deadline = time.monotonic() + DRAIN_SECONDS
                continue
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                del sources[fd]
                continue
            ring.append(chunk)
            if fd in alive and not _write_all(alive[fd], chunk):
                del alive[fd]
    return not done


class Capture:
    """Tees this process's stdout and stderr into a bounded tail stored at `uri`."""

    def __init__(self, uri: str, limit: int = LOG_LIMIT, upload_seconds: float = UPLOAD_SECONDS):
        self.uri = uri
        self.limit = limit
        self.ring = _Ring(limit)
        self.uploaded = -1  # bytes written when the worker last stored the log
        self._closing = False
        for stream in (sys.stdout, sys.stderr):
            _flush(stream)
        self._saved = {fd: os.dup(fd) for fd in (1, 2)}  # where the output went until now
        pipes = {fd: os.pipe() for fd in (1, 2)}
        control_r, control_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no process to spare: nothing has changed
            for fd in (*self._saved.values(), *(f for pair in pipes.values() for f in pair),
                       control_r, control_w):
                os.close(fd)
            raise
        if pid == 0:  # the copier: reads the pipes, writes to fds 1 and 2 as they were
            try:
                for fd in (*self._saved.values(), *(w for _, w in pipes.values()), control_w):
                    os.close(fd)
                if _copy(self.ring, {r: fd for fd, (r, _) in pipes.items()}, control_r,
                         self._store, upload_seconds):
                    signal.alarm(STORE_SECONDS)
                    self._store(*self.ring.snapshot())  # the worker died: store what it left
            finally:
                os._exit(0)
        self.pid = pid
        os.close(control_r)
        self._control = control_w
        for fd, (r, w) in pipes.items():
            os.close(r)
            os.dup2(w, fd)
            os.close(w)

    def upload(self) -> None:
        total, tail = self.ring.snapshot()
        if total != self.uploaded and self._store(total, tail):
            self.uploaded = total

    def _store(self, total: int, tail: bytes) -> bool:
        try:
            from kubemr.storage import store_for

            store_for(self.uri).write_bytes(self.uri, render(total, tail, self.limit))
            return True
        except Exception as e:  # a lost upload costs a log, never the attempt
            print(f"kubemr: cannot store this attempt's log at {self.uri}: {e}",
                  file=sys.stderr, flush=True)
            return False

    def close(self, timeout: float = 5.0) -> None:
        """Stop capturing: put fds 1 and 2 back, let the copier drain, upload the log."""
        if self._closing:
            return
        self._closing = True
        for stream in (sys.stdout, sys.stderr):
            _flush(stream)
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)
            os.close(saved)
        try:
            os.write(self._control, b"done")  # the copier need not store the log: we will
        except OSError:  # the copier is gone
            pass
        os.close(self._control)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.01)
        last = threading.Thread(target=self.upload, daemon=True)
        last.start()
        last.join(STORE_SECONDS)

    def close_on_sigterm(self) -> None:
        """On SIGTERM, store the log, then die of SIGTERM as before."""
        def handler(signum, frame) -> None:
            if self._closing:
                return  # the final upload is under way; the process ends with it
            self.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, handler)


def _flush(stream) -> None:
    try:
        stream.flush()
    except Exception:  # closed, or a flush under way (from a signal handler)
        pass


def capture(uri: str | None) -> Capture | None:
    """Start capturing this process's output into `uri`, with uploads every heartbeat (at
    least a second apart); None without a URI."""
    if not uri:
        return None
    heartbeat = float(os.environ.get("KUBEMR_HEARTBEAT_SECONDS") or 0) or UPLOAD_SECONDS
    try:
        started = Capture(uri, upload_seconds=max(1.0, heartbeat))
    except OSError as e:
        print(f"kubemr: this attempt's log is not kept: {e}", file=sys.stderr, flush=True)
        return None
    started.close_on_sigterm()
    return started
