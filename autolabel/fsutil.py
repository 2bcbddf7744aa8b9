"""Atomic file writes and output-path safety."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from autolabel.errors import UsageError

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
        with os.fdopen(
            fd, mode, encoding=None if "b" in mode else encoding, newline=None if "b" in mode else "\n"
        ) as f:
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


class RunLock:
    """An exclusive lock on a run directory (`.lock`, flock): a second `autolabel label` on the same
    output directory is refused instead of interleaving with the first. Released when the process
    ends, however it ends."""

    @classmethod
    def check(cls, run_dir: str | Path) -> None:
        """Raise if another process holds the lock; creates nothing."""
        if (Path(run_dir) / ".lock").exists():
            with cls(run_dir, create=False):
                pass

    def __init__(self, run_dir: str | Path, create: bool = True) -> None:
        self.path = Path(run_dir) / ".lock"
        self.create = create
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        import fcntl

        if self.create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if self.create else 0), FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UsageError(
                f"another autolabel process (pid {other}) is labeling into '{self.path.parent}'",
                hint="wait for it to finish (a rerun then resumes), or choose another --output",
            ) from None
        if self.create:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock; the file stays (harmless, reused next time)
            self._fd = None
