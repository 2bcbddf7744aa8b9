"""What a broken or unusable run store says: the real cause, and never "delete it" for a healthy store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from autolabel.errors import RunStoreError
from autolabel.run.run import Run
from autolabel.run.store import RunStore, store_path
from autolabel.run.store_health import store_error


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


def _damage_pages(store: Path) -> None:
    """Scramble two pages in the middle of a store (as a failing disk would), after a checkpoint."""
    import sqlite3

    con = sqlite3.connect(store)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(store.read_bytes())
    middle = len(data) // 4096 // 2
    for page in (middle, middle + 1):
        for i in range(page * 4096 + 100, page * 4096 + 4000, 7):
            data[i] = (data[i] * 31 + 17) % 256
    store.write_bytes(bytes(data))


def test_damaged_pages_are_named_and_overwrite_recovers(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    """Damaged pages made `export` and `label` print a raw SQLite error or a garbled row (exit 1, 'a rerun
    resumes': it does not), and `label --overwrite` could not clear the store."""
    from tests.helpers import cli, write_images

    write_images(tmp_path / "in", [f"im{i:03d}.png" for i in range(120)])
    run = tmp_path / "run"
    label = ["label", str(fake_ontology_yaml), str(tmp_path / "in"), "-o", str(run), "-f", "coco", "-q"]
    assert cli(*label).returncode == 0
    _damage_pages(run / "run.sqlite")
    for args in (["export", str(run), "-f", "coco"], label):
        r = cli(*args)
        assert r.returncode == 2 and "the run store is damaged" in r.stderr, (args, r.stderr)
        assert "--overwrite" in r.stderr and ".recover" in r.stderr and "unexpected" not in r.stderr
    r = cli(*label, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert len(list(run.glob("run.sqlite.damaged-*"))) >= 1  # kept for salvage
    assert cli("export", str(run), "-f", "coco").returncode == 0


@pytest.mark.parametrize(
    ("errno_name", "code", "said"),
    [
        ("ENOSPC", 1, "no space left on the disk (/r/frames/a.mp4/0000003.jpg)"),
        ("EROFS", 2, "cannot write (/r/frames/a.mp4/0000003.jpg): read-only file system"),
        ("EACCES", 2, "cannot write (/r/frames/a.mp4/0000003.jpg): permission denied"),
    ],
)
def test_file_system_errors_are_said_with_the_right_exit_code(errno_name: str, code: int, said: str) -> None:
    """A full disk while extracting frames, a read-only run (its `.lock`), an unwritable output: each said
    (they were `unexpected …`, exit 1, or a video 'that cannot be read')."""
    import errno

    from autolabel.cli.common import os_error

    message, hint, exit_code = os_error(OSError(getattr(errno, errno_name), "x", "/r/frames/a.mp4/0000003.jpg"))
    assert (message, exit_code) == (said, code) and hint


def test_a_full_disk_while_extracting_frames_stops_the_run_not_the_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from autolabel.run import clips as clips_mod
    from autolabel.types import ImageInfo

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "frames" / "a.mp4" / "0000003.jpg"))

    monkeypatch.setattr(clips_mod, "_clip", full)
    store = RunStore(tmp_path / "run.sqlite")
    video = ImageInfo("a.mp4", str(tmp_path / "a.mp4"), None)
    with pytest.raises(OSError, match="No space left"):
        clips_mod.extract_clips([video], tmp_path, _video_config(), store, "s")
    store.close()


def _video_config():  # type: ignore[no-untyped-def]
    from autolabel.config.ontology import VideoConfig

    return VideoConfig()
