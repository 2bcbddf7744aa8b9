"""What went wrong with a run store file, said without suggesting to delete a healthy one: open and write
errors (`store_error`), SQLite's page check (`quick_check`), and setting a damaged store aside."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from autolabel.errors import RunStoreError


def store_error(path: Path, e: BaseException) -> RunStoreError:
    """What really went wrong opening or writing a store, without suggesting to delete a healthy one."""
    text = str(e).lower()
    if "full" in text or getattr(e, "errno", None) == 28:
        return RunStoreError(
            f"{path}: no space left on the disk ({e}); the run store is intact",
            hint="free disk space, then rerun the same command: finished images are kept, and a frame or image "
            "being written when the disk filled is written again",
        )
    if "readonly" in text or "read-only" in text or getattr(e, "errno", None) == 30:
        return RunStoreError(
            f"{path}: the run store is read-only ({e}); it is intact",
            hint="make the directory and run.sqlite writable (or copy the run elsewhere), then rerun",
        )
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
        return RunStoreError(
            f"{path}: no permission to use the run store ({e}); it is intact",
            hint="fix the permissions of the run directory and run.sqlite, then rerun",
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return RunStoreError(
            f"{path}: this file is not an intact autolabel run store ({e})",
            hint="labels already exported from it are still usable; move the file aside and "
            "relabel into a new --output directory",
        )
    return RunStoreError(
        f"{path}: cannot open the run store ({e})",
        hint="check the disk and the permissions of the run directory; nothing was changed",
    )


def quick_check(path: Path) -> list[str]:
    """SQLite's page-level check of a store file: [] when intact, else what is damaged."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(20)").fetchall()]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        return [str(e)]
    return [] if rows == ["ok"] else [line for r in rows for line in r.splitlines() if line.strip()]


def set_aside(path: Path) -> Path:
    """Move a damaged store (and its WAL) out of the way, kept for salvage; returns where it went."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            os.replace(extra, aside.with_name(aside.name + suffix))
    os.replace(path, aside)
    return aside
