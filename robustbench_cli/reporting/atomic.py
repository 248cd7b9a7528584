"""Atomic file writes: a reader (or a killed job) never sees a half-written file."""

import os
import secrets
from pathlib import Path


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, then rename it over `path` in one step."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as a plain open() would.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def atomic_write_text(path, text) -> None:
    """Write `text` (UTF-8, line endings kept as given) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
