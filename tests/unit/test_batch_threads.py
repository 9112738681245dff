"""Batch scoring's read-ahead and background writes: order kept, errors surface, and a
consumer that stops early never leaves a thread blocked."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cycleml.scoring.batch import _in_background, _prefetch

pytestmark = pytest.mark.unit


def test_read_ahead_keeps_order_and_raises_the_readers_error() -> None:
    assert list(_prefetch(iter(range(50)))) == list(range(50))

    def broken() -> Iterator[int]:
        yield 1
        raise OSError("file truncated")

    with pytest.raises(OSError, match="file truncated"):
        list(_prefetch(broken()))


def test_a_consumer_that_stops_early_ends_the_reader() -> None:
    before = threading.active_count()
    for item in _prefetch(iter(range(1000)), depth=2):
        if item == 3:
            break
    assert threading.active_count() == before  # joined, not left waiting on a full queue
    with pytest.raises(RuntimeError, match="scoring failed"):
        for _ in _prefetch(iter(range(1000)), depth=1):
            raise RuntimeError("scoring failed")
    assert threading.active_count() == before


def test_background_writes_run_in_order_and_their_error_surfaces() -> None:
    written: list[int] = []
    with _in_background(written.append) as write:  # type: ignore[arg-type]
        for i in range(20):
            write(i)  # type: ignore[arg-type]
    assert written == list(range(20))

    def full(_: object) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), _in_background(full) as write:  # type: ignore[arg-type]
        write(1)  # type: ignore[arg-type]
        write(2)  # type: ignore[arg-type]
