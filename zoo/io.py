"""Files zoo writes: atomically, and readable by others.

Every file (checkpoints, JSON, CSV, PNG, downloads) goes through :func:`atomic_file`:
it is written to a temporary file in the destination folder, flushed to disk, and
renamed into place, so a crash, a kill or a full disk at any moment leaves either the
old file or the new one, never half of one. ``mkstemp`` creates files as 0600; they
get the mode an ordinary ``open`` would give them (0644 under the usual umask).
Inside :func:`written_together` (a population's thousand result files), the files of one
thread are flushed to disk by one ``os.sync`` and then renamed, instead of one ``fsync`` each.
"""

from __future__ import annotations

import dataclasses
import errno
import inspect
import json
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
_TOGETHER = threading.local()  # .pending: (temporary, path) of the files written in this thread's written_together


@contextmanager
def atomic_file(path: str | Path, suffix: str = ".tmp") -> Iterator[IO[bytes]]:
    """A binary handle whose content replaces ``path`` only if the ``with`` block completes.

    Inside :func:`written_together`, ``path`` is replaced when that block completes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    pending = getattr(_TOGETHER, "pending", None)
    queued = False
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if pending is None:
                os.fsync(handle.fileno())
        if pending is None:
            os.replace(temporary, path)
        else:
            pending.append((temporary, path))
            queued = True
    except OSError as error:  # a full disk surfaces in a write to the handle, which knows no file name
        if error.filename is None:
            error.filename = str(path)
        raise
    finally:
        if not queued and os.path.exists(temporary):
            os.unlink(temporary)


@contextmanager
def written_together() -> Iterator[None]:
    """Make the files this thread writes inside the block durable at once, then rename them into place.

    Each file stays atomic (old or new content, never half), but costs no ``fsync`` of its own:
    when the block completes, one ``os.sync`` flushes them all (with whatever else the machine
    has to write: one call, not one a file) and each is renamed over its path. Until then none
    of them is in place; if the block fails, none ever is. Other threads'
    files (figures drawn in the background) are written as usual. Nested blocks join the outer one.
    """
    if getattr(_TOGETHER, "pending", None) is not None:
        yield
        return
    _TOGETHER.pending = pending = []
    try:
        yield
        if pending:
            os.sync()
        for temporary, path in pending:
            os.replace(temporary, path)
    finally:
        _TOGETHER.pending = None
        for temporary, _ in pending:  # those not renamed: the block or a rename failed
            if os.path.exists(temporary):
                os.unlink(temporary)


def folders_to_make(folder: Path) -> list[Path]:
    """The folders ``folder.mkdir(parents=True)`` would make, deepest first: what to remove if the work fails."""
    return [path for path in (folder, *folder.parents) if not path.exists()]


def remove_made(folders: list[Path]) -> None:
    """Remove folders made for work that failed, deepest first, while empty; one that holds something now
    (another run's folder) stays, and so do those above it. One never made (its making failed) is passed."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_file(path) as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: str | Path, data: Any, *, indent: int | None = None) -> Path:
    """``data`` (results: tensors, dataclasses) as JSON; ``indent`` for a file people read, compact otherwise."""
    return write_bytes(path, encode_json(to_jsonable(data), indent=indent))


def encode_json(plain: Any, *, indent: int | None = None) -> bytes:
    """JSON of data that is already plain (:func:`to_jsonable`'s): compact, by the C encoder, unless ``indent``.

    ``json`` encodes indented output in pure Python, several times slower: keep it for files people read.
    """
    if indent is None:
        return json.dumps(plain, separators=(",", ":"), allow_nan=False).encode()
    return json.dumps(plain, indent=indent, allow_nan=False).encode()


def to_jsonable(value: Any) -> Any:
    """Plain JSON data from results: tensors become lists, NaN and infinities null (JSON has none).

    A dataclass becomes its fields (except those declared with ``metadata={"json": False}``,
    e.g. raw activations) plus its public properties, the numbers derived from the fields.
    """
    kind = type(value)
    if kind in _PLAIN:  # most of a result's values: answered before the costlier checks
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            field.name: getattr(value, field.name)
            for field in dataclasses.fields(value)
            if field.metadata.get("json", True)
        }
        derived = {
            name: getattr(value, name)
            for name, _ in inspect.getmembers(type(value), lambda member: isinstance(member, property))
            if not name.startswith("_")
        }
        return to_jsonable({**fields, **derived})
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if not value.is_floating_point() or (value.numel() > _CHECKED_ONE_BY_ONE and torch.isfinite(value).all()):
            return value.tolist()  # nothing to replace: skip walking every number
        return to_jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_PLAIN = frozenset({str, int, bool, type(None)})
_CHECKED_ONE_BY_ONE = 256  # a float tensor this small is checked for NaN number by number: faster than a torch call
