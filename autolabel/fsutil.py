"""Atomic file writes and output-path safety."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Iterator

from .errors import UsageError

_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() would give a new file


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write to a temporary file beside `path`, fsync, then os.replace: readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.chmod(tmp, FILE_MODE)
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding, newline=None if "b" in mode else "\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def safe_join(root: str | Path, relpath: str) -> Path:
    """`root / relpath` for writing, refusing '..', absolute paths and empty parts.

    Nothing is resolved below `root`: an existing symlink at the target (an exported image link) is
    replaced, never followed, so an export can never write into the input folder through it.
    """
    rel = PurePosixPath(relpath.replace("\\", "/"))
    if rel.is_absolute() or not rel.parts or any(part in ("..", ".", "") for part in rel.parts):
        raise UsageError(f"refusing to write '{relpath}' outside the output directory {root}")
    return Path(root).resolve().joinpath(*rel.parts)


def is_within(child: str | Path, parent: str | Path) -> bool:
    c, p = Path(child).resolve(), Path(parent).resolve()
    return c == p or p in c.parents


def remove_stale_temp_files(root: str | Path) -> int:
    """Delete temporary files that a killed atomic_write left behind (`.NAME.*.tmp`). Returns how many."""
    n = 0
    for p in Path(root).rglob(".*.tmp"):
        if p.is_file() or p.is_symlink():
            p.unlink()
            n += 1
    return n
