"""Atomic file writes: a killed stage never leaves a half-written output.

Each writer writes to a temporary file in the destination folder, then renames it over
the target (atomic on POSIX), so readers see the old file or the new one, never a mix.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["atomic_path", "read_json", "write_csv", "write_json", "write_parquet", "write_text"]


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


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
