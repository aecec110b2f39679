"""Errors kubemr reports to its users as one line, without a traceback."""


class KubemrError(Exception):
    """A problem the user can fix: the message names it."""


class ManifestError(KubemrError):
    """The job manifest is wrong."""


class UserCodeError(KubemrError):
    """User code cannot be loaded, or broke a rule of the programming model."""


class StorageError(KubemrError):
    """Input is missing, output is in the way, or the object store refused a request."""


class JobFailed(KubemrError):
    """A task failed on every attempt, so the job failed and committed nothing."""
