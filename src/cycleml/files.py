"""Atomic file writes: a killed stage never leaves a half-written output.

Each writer writes to a temporary file in the destination folder, then renames it over
the target (atomic on POSIX), so readers see the old file or the new one, never a mix.
The result looks as a plain write would have left it: a replaced file keeps its mode (and,
for root, its owner and group: `sudo` leaves no root-owned files in a user's project), a
new one gets 0666 less the umask. A file owned by another user is not replaced: in a
folder we may write to, the rename would succeed where a plain write might not, and the
file would silently become ours.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["atomic_path", "read_json", "write_csv", "write_json", "write_parquet", "write_text"]


def _euid() -> int | None:
    """This process's effective user id; None where files have no POSIX owner (Windows)."""
    return os.geteuid() if hasattr(os, "geteuid") else None


def _replaced(target: Path) -> os.stat_result | None:
    """What ``target`` is now (None: nothing yet); PermissionError when it belongs to
    another user and we are not root."""
    try:
        now = target.stat()
    except FileNotFoundError:
        return None
    me = _euid()
    if me is not None and me not in (0, now.st_uid):
        raise PermissionError(
            f"{target} belongs to another user (uid {now.st_uid}); not replacing it: "
            "write elsewhere, or ask its owner to remove it"
        )
    return now


def _new_temp(target: Path) -> tuple[Path, int]:
    """An empty private file beside ``target``, and the mode a plain ``open(target, "w")``
    would have given a new file (0666 less the umask, read from the kernel, not by
    changing the process's umask under other threads)."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        fresh = stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)  # private while half-written
    return tmp, fresh


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success,
    with the replaced file's mode (and owner, when root), or 0666 less the umask."""
    target.parent.mkdir(parents=True, exist_ok=True)
    before = _replaced(target)
    tmp, fresh = _new_temp(target)
    try:
        yield tmp
        if before is not None and _euid() == 0:
            os.chown(tmp, before.st_uid, before.st_gid)  # `sudo cycleml` keeps the owner
        os.chmod(tmp, stat.S_IMODE(before.st_mode) if before is not None else fresh)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _write(target: Path, write: Callable[[Path], object]) -> Path:
    with atomic_path(target) as tmp:
        write(tmp)
    return target


def write_text(target: Path, text: str) -> Path:
    return _write(target, lambda p: p.write_text(text, encoding="utf-8"))


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_json(target: Path, data: Any) -> Path:
    text = json.dumps(_finite(data), indent=2, default=str, allow_nan=False)
    return write_text(target, text + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_parquet(target: Path, frame: pd.DataFrame) -> Path:
    return _write(target, lambda p: frame.to_parquet(p, index=False))


def write_csv(target: Path, frame: pd.DataFrame) -> Path:
    return _write(target, lambda p: frame.to_csv(p, index=False))
