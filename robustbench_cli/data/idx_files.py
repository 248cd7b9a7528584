"""Reading the IDX files MNIST-style datasets ship as, gzipped or not."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import torch

from robustbench_cli.errors import UserError

_UNSIGNED_BYTE = 0x08


def read_idx_ubyte(path: Path) -> torch.Tensor:
    """The uint8 array in an IDX file (magic 0 0 dtype ndim, big-endian int32 sizes, data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError) as error:
        raise UserError(f"cannot read IDX file {path}: {error}") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UNSIGNED_BYTE:
        raise UserError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    header_end = 4 + 4 * ndim
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != header_end + math.prod(shape):
        raise UserError(f"{path} is truncated or corrupt: header says shape {shape}")
    # bytearray: torch wants a writable buffer to share memory with.
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=header_end)
    return data.reshape(shape)
