"""The one exception type for user mistakes.

Anything the user can fix (a bad value, a missing or corrupt data file) raises
``ZooError``; the CLI prints its message and exits non-zero without a traceback.
Bugs stay ordinary exceptions, so they keep their tracebacks.
"""


class ZooError(Exception):
    """A user-facing error: the message says what was wrong and what is accepted."""

    exit_code = 2


class TrainingDiverged(ZooError):
    """The loss or the weights stopped being finite numbers."""

    exit_code = 3
