"""Files zoo writes: atomically, and readable by others.

Every file (checkpoints, JSON, CSV, PNG, downloads) goes through :func:`atomic_file`:
it is written to a temporary file in the destination folder, flushed to disk, and
renamed into place, so a crash, a kill or a full disk at any moment leaves either the
old file or the new one, never half of one. ``mkstemp`` creates files as 0600; they
get the mode an ordinary ``open`` would give them (0644 under the usual umask).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


@contextmanager
def atomic_file(path: str | Path, suffix: str = ".tmp") -> Iterator[IO[bytes]]:
    """A binary handle whose content replaces ``path`` only if the ``with`` block completes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:  # a full disk surfaces in a write to the handle, which knows no file name
        if error.filename is None:
            error.filename = str(path)
        raise
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_file(path) as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(to_jsonable(data), indent=1, allow_nan=False))


def to_jsonable(value: Any) -> Any:
    """Plain JSON data from results: tensors become lists, NaN and infinities null (JSON has none).

    A dataclass becomes its fields (except those declared with ``metadata={"json": False}``,
    e.g. raw activations) plus its public properties, the numbers derived from the fields.
    """
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
        if not value.is_floating_point() or torch.isfinite(value).all():
            return value.tolist()  # nothing to replace: skip walking every number
        return to_jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
