"""Outputs land as a plain write would leave them (mode, owner), never over another user's
file; `cycleml predict` refuses an OUTPUT it could not write before it scores anything."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pandas as pd
import pytest

from cycleml.files import write_csv, write_parquet, write_text
from cycleml.scoring.batch import BatchError, check_output

pytestmark = pytest.mark.unit

NOBODY = 65534
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="only root can make another user's file")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


@contextmanager
def as_nobody() -> Iterator[None]:
    """Run the block with the effective ids of an ordinary user (the test runs as root)."""
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder every user may write in (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="cycleml-shared-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder)


def test_a_new_output_gets_0666_less_the_umask(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    with umask(0o027):
        write_text(tmp_path / "a.txt", "x")
        write_parquet(tmp_path / "a.parquet", frame)
        write_csv(tmp_path / "a.csv", frame)
    for name in ("a.txt", "a.parquet", "a.csv"):
        assert mode(tmp_path / name) == 0o640, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.parquet", "a.txt"]


def test_a_replaced_output_keeps_its_mode(tmp_path: Path) -> None:
    for name, old_mode in [("open.txt", 0o664), ("private.txt", 0o600), ("ro.parquet", 0o444)]:
        target = tmp_path / name
        target.write_text("old")
        target.chmod(old_mode)
        if name.endswith(".parquet"):
            write_parquet(target, pd.DataFrame({"a": [1]}))
        else:
            write_text(target, "new")
            assert target.read_text() == "new"
        assert mode(target) == old_mode, name


@needs_root
def test_root_replacing_a_users_output_keeps_its_owner(tmp_path: Path) -> None:
    target = tmp_path / "theirs.txt"
    target.write_text("old")
    os.chown(target, NOBODY, NOBODY)
    target.chmod(0o640)
    write_text(target, "new")
    done = target.stat()
    assert (done.st_uid, done.st_gid, mode(target)) == (NOBODY, NOBODY, 0o640)
    assert target.read_text() == "new"


@needs_root
def test_another_users_output_is_not_replaced(shared: Path) -> None:
    target = shared / "roots.txt"
    target.write_text("old")  # root's, in a folder nobody may write in: a rename could
    with as_nobody(), pytest.raises(PermissionError, match=r"roots.txt belongs to another user"):
        write_text(target, "new")
    assert target.read_text() == "old" and target.stat().st_uid == 0
    assert [p.name for p in shared.iterdir()] == ["roots.txt"]  # no temp file left


def test_an_output_that_cannot_be_written_is_refused_naming_the_fix(tmp_path: Path) -> None:
    (tmp_path / "out.csv").mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(BatchError, match=r"OUTPUT .*out.csv is a folder; name a file in it"):
        check_output(tmp_path / "out.csv")
    with pytest.raises(BatchError, match=r"OUTPUT .*: .*a-file is a file, not a folder"):
        check_output(tmp_path / "a-file" / "sub" / "p.csv")
    with pytest.raises(BatchError, match=r"p.txt: unknown file type; use one of \.csv"):
        check_output(tmp_path / "p.txt")
    check_output(tmp_path / "p.parquet")
    check_output(tmp_path / "new" / "folders" / "p.csv")  # the write will create them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "out.csv"]  # nothing made


def test_an_output_folder_this_user_cannot_write_in_is_refused() -> None:
    folder = Path(tempfile.mkdtemp(prefix="cycleml-readonly-"))
    try:
        folder.chmod(0o755 if ROOT else 0o555)  # as root: root's folder, checked as nobody
        with as_nobody() if ROOT else nullcontext():
            # in it, and below it: the missing folder could not be made either
            for output in (folder / "p.csv", folder / "missing" / "p.csv"):
                with pytest.raises(BatchError, match=r"OUTPUT .*: cannot write there \(Perm"):
                    check_output(output)
    finally:
        folder.chmod(0o700)
        shutil.rmtree(folder)
