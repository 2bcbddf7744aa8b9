"""What a broken or unusable run store says: the real cause, and never "delete it" for a healthy store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from autolabel.errors import RunStoreError
from autolabel.run.run import Run
from autolabel.run.store import RunStore, store_error, store_path


@pytest.mark.parametrize(
    "error,says",
    [
        (sqlite3.OperationalError("database or disk is full"), "no space left"),
        (OSError(28, "No space left on device"), "no space left"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
        (OSError(30, "Read-only file system"), "read-only"),
    ],
)
def test_a_healthy_store_that_cannot_be_written_says_why_and_that_it_is_intact(
    tmp_path: Path, error: BaseException, says: str
) -> None:
    e = store_error(tmp_path / "run.sqlite", error)
    assert says in e.message and "intact" in e.message
    assert "delete" not in (e.hint or "") and "--overwrite" not in (e.hint or "")


def test_a_corrupted_store_is_not_promised_to_resume(tmp_path: Path) -> None:
    store_path(tmp_path).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RunStoreError, match="not an intact autolabel run store") as e:
        Run.open(tmp_path)
    assert "resume" not in (e.value.hint or "") and "delete" not in (e.value.hint or "")


def test_a_store_from_a_newer_version_is_kept_and_not_overwritten(labeled_run: dict[str, Path]) -> None:
    store = RunStore(store_path(labeled_run["run"]))
    store.conn.execute("UPDATE meta SET value = '99' WHERE key = 'result_format'")
    store.close()
    with pytest.raises(RunStoreError, match="newer autolabel") as e:
        Run.open(labeled_run["run"])
    assert "upgrade" in (e.value.hint or "") and "would discard" in (e.value.hint or "")
