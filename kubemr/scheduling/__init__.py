"""One scheduler for both runners: task and attempt states, failure classes, and `decide`.

Plain Python with no Kubernetes in it. An executor (local worker processes, or pods through the
operator) observes its attempts into `Task`s, calls `decide(tasks, policy, now)`, and carries out
what it returns.
"""

from kubemr.scheduling.decide import Decision, Launch, Stop, counts, decide
from kubemr.scheduling.failures import RULES, FailureRule, failure_of_report
from kubemr.scheduling.policy import Policy
from kubemr.scheduling.state import Attempt, Task, new_tasks

__all__ = ["RULES", "Attempt", "Decision", "FailureRule", "Launch", "Policy", "Stop", "Task",
           "counts", "decide", "failure_of_report", "new_tasks"]
