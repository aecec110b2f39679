"""The scheduling core with a fake clock and a fake executor: the rules both runners follow."""

import pytest

from kubemr.scheduling import RULES, Policy, Task, counts, decide, failure_of_report, new_tasks
from kubemr.scheduling.failures import (
    DELETED,
    EVICTED,
    LAUNCH_FAILED,
    MAP_OUTPUT_LOST,
    NODE_LOST,
    OOM_KILLED,
    STORAGE_ERROR,
    TIMEOUT,
    USER_ERROR,
)
from kubemr.scheduling.state import RUNNING, SUCCEEDED


class FakeExecutor:
    """Starts attempts as the scheduler says; the test says how each one ends."""

    def __init__(self, tasks, policy):
        self.tasks, self.policy, self.now = tasks, policy, 1000.0
        self.launched, self.stopped = [], []

    def step(self, started=None):
        decision = decide(self.tasks, self.policy, self.now, started)
        for stop in decision.stop:
            self.stopped.append((stop.task.kind, stop.task.index, stop.attempt.number,
                                 stop.reason))
            if stop.attempt.active:
                stop.attempt.fail("PodDeleted", "stopped", self.now)
        for launch in decision.launch:
            attempt = launch.task.attempt(launch.number)
            attempt.state, attempt.launched = RUNNING, self.now
            self.launched.append((launch.task.kind, launch.task.index, launch.number,
                                  launch.avoid_node))
        return decision

    def commit(self, task):
        task.latest.state = SUCCEEDED
        task.committed, task.committed_attempt = True, task.latest.number

    def fail(self, task, failure, node="n1", **kw):
        task.latest.fail(failure, f"{failure} happened", self.now)
        task.latest.node = node
        for k, v in kw.items():
            setattr(task.latest, k, v)


def test_parallelism_bounds_what_runs_and_reduces_wait_for_every_map():
    tasks = new_tasks(5, 2)
    ex = FakeExecutor(tasks, Policy(parallelism=2))
    d = ex.step()
    assert d.phase == "Mapping" and [x[1] for x in ex.launched] == [0, 1] and d.waiting == 3
    assert ex.step().launch == []  # nothing frees a slot
    ex.commit(tasks[0])
    assert [(x.task.index, x.number) for x in ex.step().launch] == [(2, 1)]
    for t in tasks[:5]:
        if not t.committed:
            t.attempt(1).state = RUNNING
            ex.commit(t)
    d = ex.step()
    assert d.phase == "Reducing" and [(x.task.kind, x.task.index) for x in d.launch] == \
        [("reduce", 0), ("reduce", 1)]
    for t in tasks[5:]:
        ex.commit(t)
    assert ex.step().phase == "Succeeded"


def test_a_user_error_backs_off_avoids_the_node_and_fails_the_job_after_max_attempts():
    task = Task("map", 0)
    ex = FakeExecutor([task], Policy(max_attempts=3, backoff_seconds=10))
    ex.step()
    ex.fail(task, USER_ERROR, node="n1")
    assert ex.step().launch == []  # backing off: 10 s after the first failure
    ex.now += 10.5
    (launch,) = ex.step().launch
    assert (launch.number, launch.avoid_node) == (2, "n1")
    ex.fail(task, USER_ERROR)
    ex.now += 10.5
    assert ex.step().launch == []  # the second backoff is 20 s
    ex.now += 10
    assert len(ex.step().launch) == 1
    ex.fail(task, USER_ERROR)
    d = ex.step()
    assert d.phase == "Failed" and d.failure == USER_ERROR
    assert d.message.startswith("map task 0 failed on all 3 attempts (UserError)")


@pytest.mark.parametrize("failure", [NODE_LOST, DELETED, MAP_OUTPUT_LOST])
def test_failures_that_are_not_the_tasks_fault_retry_at_once_and_use_no_attempt(failure):
    task = Task("map", 0)
    ex = FakeExecutor([task], Policy(max_attempts=1, backoff_seconds=60))
    ex.step()
    for n in range(2, RULES[failure].limit + 1):
        ex.fail(task, failure)
        (launch,) = ex.step().launch
        assert launch.number == n
    ex.fail(task, failure)
    d = ex.step()
    assert d.phase == "Failed" and f"failed {RULES[failure].limit} times ({failure})" in d.message


@pytest.mark.parametrize("failure", [STORAGE_ERROR, LAUNCH_FAILED, EVICTED])
def test_infrastructure_failures_back_off_but_use_no_attempt(failure):
    task = Task("map", 0)
    ex = FakeExecutor([task], Policy(max_attempts=1, backoff_seconds=5))
    ex.step()
    ex.fail(task, failure)
    assert ex.step().launch == []
    ex.now += 5.1
    (launch,) = ex.step().launch
    assert launch.number == 2


def test_the_failure_table_is_explicit_for_every_class():
    assert RULES[USER_ERROR].counts and RULES[TIMEOUT].counts and RULES[OOM_KILLED].counts
    for failure in (STORAGE_ERROR, LAUNCH_FAILED, NODE_LOST, EVICTED, DELETED, MAP_OUTPUT_LOST):
        assert not RULES[failure].counts and RULES[failure].limit
    assert not RULES[NODE_LOST].backs_off and RULES[NODE_LOST].avoids_node
    assert not RULES[OOM_KILLED].avoids_node


def test_an_attempt_without_progress_times_out_and_is_stopped():
    task = Task("map", 0)
    ex = FakeExecutor([task], Policy(task_timeout=30, backoff_seconds=0))
    ex.step()
    ex.now += 20
    task.latest.progress = ex.now  # progress moves the clock of the timeout
    ex.now += 29
    assert ex.step().stop == []
    ex.now += 2
    d = ex.step()
    assert ex.stopped == [("map", 0, 1, TIMEOUT)]
    assert task.attempts[0].failure == TIMEOUT and "no progress for 31s" in task.attempts[0].message
    assert [x.number for x in d.launch] == [2]


def test_an_attempt_that_never_starts_fails_as_image_or_scheduling():
    task = Task("map", 0)
    ex = FakeExecutor([task], Policy(task_timeout=30))
    ex.step()
    task.latest.state, task.latest.message = "pending", "0/3 nodes are available"
    ex.now += 31
    ex.step()
    assert task.attempts[0].failure == "ImageOrScheduling"
    assert "did not start within 30s: 0/3 nodes are available" in task.attempts[0].message


def test_the_job_deadline_fails_the_job_and_stops_every_attempt():
    tasks = new_tasks(2, 1)
    ex = FakeExecutor(tasks, Policy(active_deadline=60))
    ex.step(started=1000.0)
    ex.now += 61
    d = ex.step(started=1000.0)
    assert d.phase == "Failed" and d.failure == "DeadlineExceeded"
    assert sorted(s[:3] for s in ex.stopped) == [("map", 0, 1), ("map", 1, 1)]


def test_a_lost_map_output_reported_by_a_reduce_makes_that_map_again_once():
    tasks = new_tasks(2, 1)
    ex = FakeExecutor(tasks, Policy(max_attempts=1))
    ex.step()
    ex.commit(tasks[0])
    ex.commit(tasks[1])
    ex.step()
    reduce = tasks[2]
    ex.fail(reduce, MAP_OUTPUT_LOST, lost_maps=((1, 1),))
    d = ex.step()
    assert [t.index for t in d.lost_maps] == [1] and d.phase == "Mapping"
    assert [(x.task.index, x.number) for x in d.launch] == [(1, 2)]
    ex.commit(tasks[1])
    d = ex.step()  # the same report names attempt 1, which is no longer the committed one
    assert d.lost_maps == [] and d.phase == "Reducing"
    assert [(x.task.kind, x.number) for x in d.launch] == [("reduce", 2)]


def test_a_losing_duplicate_is_stopped_once_another_attempt_commits():
    task = Task("map", 0)
    ex = FakeExecutor([task, Task("reduce", 0)], Policy())
    ex.step()
    second = task.attempt(2)
    second.state = RUNNING
    task.committed, task.committed_attempt = True, 1
    task.attempts[0].state = SUCCEEDED
    ex.step()
    assert ex.stopped == [("map", 0, 2, "Superseded")]


def test_counts_follow_the_tasks():
    tasks = new_tasks(3, 1)
    ex = FakeExecutor(tasks, Policy(max_attempts=1, parallelism=1))
    ex.step()
    ex.commit(tasks[0])
    ex.step()
    assert counts(tasks, "map", ex.policy) == {"total": 3, "pending": 1, "running": 1,
                                               "succeeded": 1, "failed": 0}
    ex.fail(tasks[1], USER_ERROR)
    assert counts(tasks, "map", ex.policy)["failed"] == 1


def test_policy_reads_the_spec():
    policy = Policy.from_spec({"parallelism": 3, "maxAttempts": 2, "backoffSeconds": 1,
                               "taskTimeoutSeconds": 40, "activeDeadlineSeconds": 90})
    assert policy == Policy(3, 2, 1.0, 40.0, 90.0)
    assert [policy.backoff(n) for n in range(5)] == [0, 1, 2, 4, 8]
    assert Policy(backoff_seconds=100).backoff(10) == 300


@pytest.mark.parametrize("report, failure", [
    ({"errorType": "ValueError", "error": "bad"}, USER_ERROR),
    ({"errorType": "StorageError", "error": "refused"}, STORAGE_ERROR),
    ({"errorType": "StorageUnavailable", "error": "down"}, STORAGE_ERROR),
    ({"errorType": "MemoryError", "error": ""}, OOM_KILLED),
    ({"errorType": "MapOutputLost", "error": "gone", "lostMaps": [[3, 1]]}, MAP_OUTPUT_LOST),
])
def test_a_workers_report_names_its_failure_class(report, failure):
    assert failure_of_report({"ok": False, **report})[0] == failure


def phase_with_a_straggler(speculation=True):
    tasks = [Task("map", i) for i in range(10)] + [Task("reduce", 0)]
    ex = FakeExecutor(tasks, Policy(parallelism=20, speculation=speculation))
    ex.step()
    for t in tasks[:9]:
        t.latest.finished = ex.now + 1.0
        ex.commit(t)
    tasks[9].latest.node = "slow-node"
    return tasks, ex


def test_a_straggler_gets_one_backup_on_another_node_and_the_loser_is_stopped():
    tasks, ex = phase_with_a_straggler()
    ex.now += 2.0
    assert ex.step().launch == []  # 2 s is not much longer than the peers' 1 s
    ex.now += 3.0
    (backup,) = ex.step().launch
    assert (backup.task.index, backup.number, backup.avoid_node, backup.backup) == \
        (9, 2, "slow-node", True)
    ex.now += 1.0
    assert ex.step().launch == []  # one backup per task
    tasks[9].attempt(2).finished = ex.now
    tasks[9].attempt(2).state = SUCCEEDED
    tasks[9].committed, tasks[9].committed_attempt = True, 2
    decision = ex.step()
    assert ("map", 9, 1, "Superseded") in ex.stopped
    assert decision.phase == "Reducing"


def test_no_backup_with_speculation_off_or_before_every_task_has_started():
    tasks, ex = phase_with_a_straggler(speculation=False)
    ex.now += 60
    assert ex.step().launch == []
    tasks = [Task("map", i) for i in range(10)]
    ex = FakeExecutor(tasks, Policy(parallelism=9))
    ex.step()
    for t in tasks[:8]:
        t.latest.finished = ex.now + 1.0
        ex.commit(t)
    ex.now += 60
    assert [x.task.index for x in ex.step().launch] == [9]  # the last task, not a backup


def test_suspending_stops_every_attempt_without_using_one_and_resuming_goes_on():
    tasks = new_tasks(3, 1)
    ex = FakeExecutor(tasks, Policy(max_attempts=1, backoff_seconds=60))
    ex.step()
    ex.commit(tasks[0])
    ex.policy = Policy(max_attempts=1, backoff_seconds=60, suspended=True)
    d = ex.step()
    assert d.phase == "Suspended" and d.launch == []
    assert sorted(s[:4] for s in ex.stopped) == [("map", 1, 1, "Suspended"),
                                                 ("map", 2, 1, "Suspended")]
    ex.now += 1000
    assert ex.step().launch == []  # still suspended: nothing starts
    ex.policy = Policy(max_attempts=1, backoff_seconds=60)
    d = ex.step()
    assert d.phase == "Mapping"  # maxAttempts 1, yet the stopped attempts used none
    assert [(x.task.index, x.number) for x in d.launch] == [(1, 2), (2, 2)]
    assert tasks[0].committed and len(tasks[0].attempts) == 1
