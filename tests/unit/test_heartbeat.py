"""The worker's heartbeat: beaten from the task's own progress, on its own thread."""

import os
import time

from kubemr.engine import progress
from kubemr.runtime import worker


def test_the_heartbeat_beats_as_the_task_moves_and_stops_when_it_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEMR_HEARTBEAT_SECONDS", "0.4")  # a beat at most every 0.2 s
    alive = tmp_path / "alive"
    worker._beat_to(f"file://{alive}")
    try:
        progress.advance()
        assert not alive.exists()  # not due yet
        beats = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            progress.advance()
            if alive.exists() and (not beats or os.path.getmtime(alive) != beats[-1]):
                beats.append(os.path.getmtime(alive))
            time.sleep(0.01)
        assert 3 <= len(beats) <= 8, beats  # every 0.2 s over 1.5 s, give or take load
        assert 0 < int(alive.read_text()) <= progress.moves()  # the count it beat at
        hung = os.path.getmtime(alive)
        time.sleep(0.5)  # no progress: no beat
        assert os.path.getmtime(alive) == hung
    finally:
        worker._stop_beating()
    progress.advance()
    time.sleep(0.3)
    progress.advance()  # stopped: the next attempt's beats go elsewhere, these nowhere
    assert os.path.getmtime(alive) == hung


def test_no_heartbeat_without_its_interval(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBEMR_HEARTBEAT_SECONDS", raising=False)
    worker._beat_to(f"file://{tmp_path}/alive")
    for _ in range(3):
        progress.advance()
    assert not (tmp_path / "alive").exists()
