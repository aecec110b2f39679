"""Running task attempts: the worker entrypoint, one attempt, and the local executor."""
