"""Errors kubemr reports to its users as one line, without a traceback."""


class KubemrError(Exception):
    """A problem the user can fix: the message names it."""


class NotFound(KubemrError):
    """No such thing: a job, a task, an attempt, or a job this reader may not see."""


class ManifestError(KubemrError):
    """The job manifest is wrong."""


class UserCodeError(KubemrError):
    """User code cannot be loaded, or broke a rule of the programming model."""


class StorageError(KubemrError):
    """Input is missing, output is in the way, or the object store refused a request."""


class OutputInUse(StorageError):
    """Another job holds the output prefix, or an object kubemr did not write is in the way
    of the commit: nothing was written or deleted."""


class UntrustedCommit(KubemrError):
    """A task's COMMIT names data outside its job's own work prefix."""


class StorageUnavailable(StorageError):
    """The object store could not be reached or answered with a server error: try later."""


class JobFailed(KubemrError):
    """A task failed on every attempt, so the job failed and committed nothing."""


class MapOutputLost(StorageError):
    """A task cannot read committed outputs (of maps, or of combine tasks in a tree of
    reduces): the tasks that made them must run again."""

    def __init__(self, message: str, lost: list[list]):
        super().__init__(message)
        self.lost = lost  # [kind, index, attempt] of each output that is gone
