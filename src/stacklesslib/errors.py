"""Exceptions of stacklesslib."""
import stackless


class TimeoutError(RuntimeError):  # noqa: A001 (the name stacklesslib has always used)
    """A blocking operation did not finish in time."""


class CancelledError(stackless.TaskletExit):
    """The tasklet doing a job for another one was killed."""


class AbortedError(RuntimeError):
    """A ValueEvent was aborted without an exception of its own."""
