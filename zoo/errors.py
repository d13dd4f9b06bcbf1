"""The one place where failures are classified: a mistake in the input, divergence, a fault of the machine, or a bug.

Every zoo command (``python -m zoo``, the scripts) ends a failure through
:func:`exit_on_failure`. A :class:`ZooFailure` names what went wrong in one line and
carries its exit code: a mistake in the input (:class:`ZooError`: a bad value, a missing
or corrupt file, a checkpoint that does not fit), training that diverged
(:class:`TrainingDiverged`), a fault of the environment (:class:`EnvironmentFault`: a
full disk, a folder that cannot be written, a device this machine lacks, memory), or a
run stopped from outside (:class:`Interrupted`). What zoo did not raise itself is
classified by the type of the library's exception (an ``OSError``'s errno, torch's
``OutOfMemoryError``, Lightning's ``MisconfigurationException``, argparse's and
jsonargparse's ``ArgumentError``, YAML's ``YAMLError``, a ``ValueError`` raised while a
configured object was being built); only a bug in zoo shows its traceback.

Exit codes: 0 done; 1 a bug in zoo (traceback); 2 a mistake in the input;
3 training diverged; 4 a fault of the environment; 130 interrupted (Ctrl-C);
143 stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import errno
import inspect
import re
import signal
import sys
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, NoReturn, TypeVar

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


class ZooFailure(Exception):
    """A failure zoo can say in one line; ``exit_code`` says which kind (the subclasses)."""

    exit_code = 1


class ZooError(ZooFailure):
    """A mistake in the input: the message says what was wrong and what is accepted."""

    exit_code = 2


class TrainingDiverged(ZooFailure):
    """The loss or the weights stopped being finite numbers."""

    exit_code = 3


class EnvironmentFault(ZooFailure):
    """The machine, not the input: a full disk, an unwritable folder, a missing device, memory."""

    exit_code = 4


class Interrupted(ZooFailure):
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
REFUSED_NAMES = {  # the OS refuses the name itself: the value that made it is the user's
    errno.ENAMETOOLONG: "a file or folder name this long is refused by the file system; choose a shorter name",
    errno.EILSEQ: "the file system refuses a character in this name; choose another name",
}
MISSING_DEVICE = (  # what Lightning's MisconfigurationException says of a device this machine lacks
    "can not run on your system",  # an accelerator (mps, cuda) this machine has not
    "not available",
    "No supported gpu backend found",  # accelerator gpu without CUDA or MPS
    "But your machine only has",  # a GPU index beyond this machine's GPUs
)
LINKED = ("input_shape", "num_outputs", "task")  # a model's settings the data module gives, not the user
# The exceptions a library raises for a value it refuses (a ValueError for an invalid rate, a
# TypeError for a device count of the wrong kind, a ZeroDivisionError for a count of 0 it divides by).
REFUSALS = (ValueError, TypeError, OverflowError, ZeroDivisionError, RuntimeError)


def classify(error: BaseException) -> ZooFailure | None:
    """The user-facing failure behind ``error``, or ``None`` for a bug in zoo (it keeps its traceback).

    Looks through the chain of causes (jsonargparse and Lightning wrap what they call).
    """
    for cause in _chain(error):
        if isinstance(cause, ZooFailure):
            return cause
        if isinstance(cause, KeyboardInterrupt):
            return Interrupted("interrupted", 130)
    for check in (_environment_fault, _refused_by_the_os, _refused_by_a_library):
        for cause in _chain(error):
            failure = check(cause)
            if failure is not None:
                return failure
    return None


def first_line(error: BaseException) -> str:
    """The first line of an error's text (libraries append advice and tracebacks), else its type's name."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def count(text: str) -> int:
    """A script's argument type for a count that must be at least 1 (repeats, epochs, ``--top``): argparse says
    ``argument --top: must be at least 1, got 0`` in one line where a 0 would end in a traceback later."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def exit_on_failure(main: Callable[[], Result], program: str = "zoo", *, say_stops: bool = True) -> Result:
    """Run ``main``; a classified failure prints one line ``<program>: error: ...`` and exits with its code.

    ``say_stops=False``: Ctrl-C and SIGTERM are raised as :class:`Interrupted` instead, for a caller that
    says itself how to go on (a sweep: its hint to resume a run would be wrong there).
    """
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    try:
        return main()
    except SIGTERMException:  # Lightning's, a SystemExit without a code
        _fail(program, Interrupted("stopped by SIGTERM", 128 + signal.SIGTERM), say_stops)
    except SystemExit as exit_:
        if isinstance(exit_.__context__, KeyboardInterrupt):  # Lightning turns Ctrl-C into sys.exit(1)
            _fail(program, Interrupted("interrupted", 130), say_stops)
        raise
    except BaseException as error:
        failure = classify(error)
        if failure is None:
            raise
        _fail(program, failure, say_stops)


def _fail(program: str, failure: ZooFailure, say_stops: bool = True) -> NoReturn:
    if isinstance(failure, Interrupted) and not say_stops:
        raise failure
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
    import torch

    # torch's CPU allocator raises a plain RuntimeError: only its text says that memory was refused
    cpu_memory = isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)) or cpu_memory:
        return _out_of_memory(error)
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


def _out_of_memory(error: BaseException) -> EnvironmentFault:
    """Memory refused: the size asked for (from the allocator's text, the only place it is given) and by what."""
    text = str(error)
    asked = ""
    if found := re.search(r"allocate (\d+) bytes", text):  # torch's CPU allocator
        asked = f" {_bytes(int(found.group(1)))} at once,"
    elif found := re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]?i?B)", text):  # torch's CUDA allocator
        asked = f" {found.group(1)} at once,"
    built = _configured_object(error, constructing_only=False)
    if built is None:
        what, hint = "zoo", "choose a smaller data.batch_size or model"
    else:
        what = _described(built)
        running = built[0] == "model" and _running(error)
        hint = "choose a smaller data.batch_size or model" if running else "choose smaller sizes"
    return EnvironmentFault(f"out of memory: {what} asked for{asked} more than this machine could give; {hint}")


def _refused_by_the_os(error: BaseException) -> ZooError | None:
    if isinstance(error, OSError) and error.errno in REFUSED_NAMES:
        name = error.filename if error.filename is not None else "a path"
        return ZooError(f"{_shortened(str(name))}: {REFUSED_NAMES[error.errno]}")
    return None


def _refused_by_a_library(error: BaseException) -> ZooFailure | None:
    """A value torch, Lightning or a parser refused: their message names it; say which setting it was."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException
    from yaml import YAMLError

    message = first_line(error)
    if isinstance(error, MisconfigurationException):
        # Lightning raises this one type for a device it cannot use and for a value it refuses: only its
        # text tells them apart
        if any(text in str(error) for text in MISSING_DEVICE):
            return EnvironmentFault(f"this machine lacks the device asked for: {' '.join(str(error).split())}")
        built = _configured_object(error)
        if built is not None:
            return ZooError(f"{_described(built)} refused its settings: {message}")
        return ZooError(f"Lightning refused the configuration: {message}")
    if isinstance(error, argparse.ArgumentError):  # jsonargparse's ArgumentError is argparse's
        return ZooError(message)
    if isinstance(error, YAMLError):
        mark = getattr(error, "problem_mark", None)
        where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return ZooError(f"{where}not valid YAML: {getattr(error, 'problem', None) or message}")
    built = _configured_object(error) if isinstance(error, REFUSALS) else None
    if built is None or _raised_by_zoo(error):
        return None
    if built[2].f_code.co_name != "__init__" and isinstance(error, RuntimeError | TypeError):
        return None  # an optimizer's or a schedule's once built: its state (a bug), not its settings
    return ZooError(f"{_described(built)} refused its settings: {type(error).__name__}: {message}")


def _configured_object(error: BaseException, *, constructing_only: bool = True) -> tuple[str, Any, Any] | None:
    """The configured object (model, data, optimizer, ...) whose code raised ``error``: its group, itself, its frame.

    The innermost frame whose ``self`` is one of the configured types; the model, the data,
    the callbacks, the logger and the trainer only while being built (``__init__``, or
    anywhere with ``constructing_only=False``), since their later code is zoo's or
    Lightning's own; an optimizer or a schedule at any time (they only run their settings).
    """
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.loggers import Logger

    groups: tuple[tuple[type, str, bool], ...] = (  # (type, config group, only while being built)
        (torch.optim.Optimizer, "optimizer", False),
        (torch.optim.lr_scheduler.LRScheduler, "lr_scheduler", False),
        (pl.LightningModule, "model", constructing_only),
        (pl.LightningDataModule, "data", constructing_only),
        (pl.Callback, "callback", constructing_only),
        (Logger, "trainer.logger", constructing_only),
        (pl.Trainer, "trainer", constructing_only),
    )
    found = None
    for frame in _frames(error.__traceback__):
        instance = frame.f_locals.get("self")
        if instance is None:
            continue
        for kind, group, when_built in groups:
            if isinstance(instance, kind) and (not when_built or frame.f_code.co_name == "__init__"):
                found = (group, instance, frame)
                break
    return found


def _described(built: tuple[str, Any, Any]) -> str:
    """``the optimizer Adam (weight_decay=-1.0)``: the group, the class, and the settings that are not its defaults.

    The model's, the data's, the optimizer's and the schedule's settings are listed (while it
    is being built, the arguments it was given; later, its attributes of those names);
    Lightning's trainer and callbacks name the refused setting in their own message.
    """
    group, instance, frame = built
    name = type(instance).__name__
    label = f"the {group}" if name.lower() == group else f"the {group} {name}"
    if group not in ("model", "data", "optimizer", "lr_scheduler"):
        return label
    given = frame.f_locals if frame.f_code.co_name == "__init__" else vars(instance)
    hparams = getattr(instance, "hparams", None)
    if hparams:  # a Lightning module's, saved before its layers or splits are built
        given = {**given, **hparams}
    try:
        parameters = inspect.signature(type(instance).__init__).parameters.values()
    except (TypeError, ValueError):
        return label
    shown = [
        f"{parameter.name}={given[parameter.name]!r}"
        for parameter in parameters
        if parameter.name in given
        and parameter.name not in ("self", "params", "optimizer", "last_epoch", *LINKED)  # last_epoch: its position
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        and _differs(given[parameter.name], parameter.default)
    ]
    return f"{label} ({', '.join(shown)})" if shown else label


def _differs(value: Any, default: Any) -> bool:
    try:
        return bool(value != default)
    except Exception:  # a tensor compared element-wise, say: show it
        return True


def _running(error: BaseException) -> bool:
    """Whether ``error`` rose from a running Trainer (a step), not from building an object."""
    import pytorch_lightning as pl

    return any(
        isinstance(frame.f_locals.get("self"), pl.Trainer) and frame.f_code.co_name != "__init__"
        for frame in _frames(error.__traceback__)
    )


def _raised_by_zoo(error: BaseException) -> bool:
    """Whether zoo's own code raised ``error`` (a bug, not a library refusing a value)."""
    frames = list(_frames(error.__traceback__))
    return bool(frames) and str(frames[-1].f_globals.get("__name__", "")).split(".")[0] == "zoo"


def _frames(traceback: TracebackType | None) -> Iterator[Any]:
    while traceback is not None:
        yield traceback.tb_frame
        traceback = traceback.tb_next


def _bytes(count: int) -> str:
    if count < 1000:
        return f"{count} bytes"
    size = float(count)
    for unit in ("KB", "MB", "GB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} TB"


def _shortened(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-limit // 2 :]}"
