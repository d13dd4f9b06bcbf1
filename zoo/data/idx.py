"""Reader for the IDX format (LeCun et al.) that MNIST and Fashion-MNIST ship in.

Header, big-endian: two zero bytes, a type byte (0x08 = unsigned byte), the
number of dimensions, then one int32 per dimension; the payload follows.
The whole file is checked before a tensor is returned, so a corrupt file is
refused instead of half-read.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import torch

from zoo.errors import ZooError

UNSIGNED_BYTE = 0x08


def parse_idx(raw: bytes, source: str = "<bytes>") -> torch.Tensor:
    """Decode uncompressed IDX bytes into a uint8 tensor of the header's shape."""
    if len(raw) < 4:
        raise ZooError(f"{source}: not an IDX file (only {len(raw)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != UNSIGNED_BYTE or ndim == 0:
        raise ZooError(
            f"{source}: wrong IDX magic number 0x{int.from_bytes(raw[:4], 'big'):08x}; "
            "expected 0x00000801 (labels) or 0x00000803 (images) of unsigned bytes"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ZooError(f"{source}: IDX header cut short ({len(raw)} of {header_size} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = header_size + math.prod(shape)
    if len(raw) != expected:
        raise ZooError(
            f"{source}: IDX header announces shape {tuple(shape)} ({expected} bytes) "
            f"but the file holds {len(raw)} bytes"
        )
    payload = bytearray(raw[header_size:])
    return torch.frombuffer(payload, dtype=torch.uint8).reshape(shape)


def read_idx(path: str | Path) -> torch.Tensor:
    """Read a ``.gz`` (or plain) IDX file; a truncated gzip stream is an error."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:  # other OSErrors are the machine's (zoo.errors)
        raise ZooError(f"{path}: cannot be read as gzip-compressed IDX ({error})") from None
    return parse_idx(raw, str(path))
