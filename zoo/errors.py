"""The one place where failures are classified: a mistake in the input, a fault of the machine, or a bug.

Every zoo command (``python -m zoo``, the scripts) ends a failure through
:func:`exit_on_failure`. A mistake in the input (a bad value, a missing or corrupt
file, a checkpoint that does not fit) and a fault of the environment (a full disk, a
folder that cannot be written, a device this machine lacks, memory) end in one line
that names the value or the place, and a documented exit code; only a bug in zoo
shows its traceback.

Exit codes: 0 done; 1 a bug in zoo (traceback); 2 a mistake in the input;
3 training diverged; 4 a fault of the environment; 130 interrupted (Ctrl-C);
143 stopped by SIGTERM.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

Result = TypeVar("Result")

EXIT_CODES = {
    0: "done",
    1: "a bug in zoo (the traceback says where)",
    2: "a mistake in the input: a value, a file, a checkpoint",
    3: "training diverged (the loss or the weights stopped being finite numbers)",
    4: "a fault of the environment: disk full, a folder that cannot be written or read, a missing device, memory",
    130: "interrupted (Ctrl-C); resume with --ckpt_path last",
    143: "stopped by SIGTERM; resume with --ckpt_path last",
}


class ZooError(Exception):
    """A mistake in the input: the message says what was wrong and what is accepted."""

    exit_code = 2


class TrainingDiverged(ZooError):
    """The loss or the weights stopped being finite numbers."""

    exit_code = 3


class EnvironmentFault(ZooError):
    """The machine, not the input: a full disk, an unwritable folder, a missing device, memory."""

    exit_code = 4


class Interrupted(ZooError):
    """The run was stopped from outside; its last completed epoch is saved."""

    def __init__(self, how: str, exit_code: int) -> None:
        super().__init__(f"{how}; resume from the last completed epoch with --ckpt_path last")
        self.exit_code = exit_code


WRITE_FAULTS = {
    errno.ENOSPC: "the disk is full; free some space, or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded; free some space, or write elsewhere",
    errno.EROFS: "the file system is read-only; write elsewhere",
}
ACCESS_FAULTS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
}


def classify(error: BaseException) -> ZooError | None:
    """The user-facing failure behind ``error``, or ``None`` for a bug in zoo (it keeps its traceback).

    Looks through the chain of causes (jsonargparse and Lightning wrap what they call).
    """
    for cause in _chain(error):
        if isinstance(cause, ZooError):
            return cause
        if isinstance(cause, KeyboardInterrupt):
            return Interrupted("interrupted", 130)
    for cause in _chain(error):
        fault = _environment_fault(cause)
        if fault is not None:
            return fault
    for cause in _chain(error):
        mistake = _refused_by_a_library(cause)
        if mistake is not None:
            return mistake
    return None


def exit_on_failure(main: Callable[[], Result], program: str = "zoo") -> Result:
    """Run ``main``; a classified failure prints one line ``<program>: error: ...`` and exits with its code."""
    try:
        return main()
    except SystemExit as exit_:
        if type(exit_).__name__ == "SIGTERMException":  # Lightning's, a SystemExit without a code
            _fail(program, Interrupted("stopped by SIGTERM", 143))
        if isinstance(exit_.__context__, KeyboardInterrupt):  # Lightning turns Ctrl-C into sys.exit(1)
            _fail(program, Interrupted("interrupted", 130))
        raise
    except BaseException as error:
        failure = classify(error)
        if failure is None:
            raise
        _fail(program, failure)


def _fail(program: str, failure: ZooError) -> NoReturn:
    print(f"{program}: error: {failure}", file=sys.stderr)
    sys.exit(failure.exit_code)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _environment_fault(error: BaseException) -> EnvironmentFault | None:
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        first = (str(error).splitlines() or ["out of memory"])[0]
        return EnvironmentFault(f"out of memory ({first}); try a smaller data.batch_size or model")
    if not isinstance(error, OSError):
        return None
    where = f"{error.filename}: " if error.filename else ""
    if error.errno in WRITE_FAULTS:
        return EnvironmentFault(f"{where}{WRITE_FAULTS[error.errno]} (e.g. --trainer.logger.init_args.save_dir)")
    if error.errno in ACCESS_FAULTS:
        return EnvironmentFault(f"{where}{ACCESS_FAULTS[error.errno]}")
    if error.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST) and error.filename:
        kind = "is not a folder" if error.errno != errno.EISDIR else "is a folder, not a file"
        return EnvironmentFault(f"{error.filename} {kind} (a file or folder is in the way)")
    return None


def _refused_by_a_library(error: BaseException) -> ZooError | None:
    """A value torch or Lightning refused: their message names it; say who refused it."""
    if type(error).__name__ == "MisconfigurationException":
        message = (str(error).splitlines() or [""])[0]
        if "can not run on your system" in message or "not available" in message:
            return EnvironmentFault(f"this machine lacks the device asked for: {message}")
        return ZooError(f"Lightning refused the configuration: {message}")
    if isinstance(error, (ValueError, TypeError)) and _raised_in(error, f"torch{os.sep}optim{os.sep}"):
        return ZooError(f"the optimizer or learning-rate schedule refused its arguments: {error}")
    return None


def _raised_in(error: BaseException, fragment: str) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and fragment in frames[-1].filename
