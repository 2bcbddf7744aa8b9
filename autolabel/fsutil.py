"""Atomic file writes and output-path safety."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

from autolabel.errors import UsageError

_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() would give a new file


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write to a temporary file beside `path`, fsync, then os.replace: readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".al-", suffix=".tmp", dir=p.parent)  # short: a 255-byte name still fits
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


class StreamedFile:
    """A text file written piece by piece (`write`) under a temporary name and renamed into place whole by
    `commit()`; `discard()` (safe to call after commit) drops it and leaves what was there."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._cm: Any = atomic_write(self.path)
        self._f: IO[str] | None = self._cm.__enter__()

    def write(self, text: str) -> None:
        assert self._f is not None, "already committed or discarded"
        self._f.write(text)

    def commit(self) -> None:
        assert self._f is not None, "already committed or discarded"
        self._cm.__exit__(None, None, None)
        self._f = None

    def discard(self) -> None:
        if self._f is not None:
            self._f = None
            try:
                self._cm.__exit__(RuntimeError, RuntimeError("discarded"), None)
            except OSError:  # a full disk fails the close: the temporary file is removed all the same
                pass


def head_lines(path: str | Path, n: int = 1) -> list[str]:
    """The first `n` lines of a text file (fewer, or none, when it is shorter, unreadable or not UTF-8)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line for _, line in zip(range(n), f)]
    except (OSError, UnicodeDecodeError):
        return []


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


MAX_COMPONENT = 255  # bytes of one file or folder name (what file systems allow)


def export_name(relpath: str) -> str:
    """A name an export can always write for an image's relative path: backslashes (legal in Linux file
    names, path separators elsewhere) become `_`, empty, `.` and `..` parts become `_`, `_`, `__`, and a part
    over MAX_COMPONENT bytes is shortened with a hash of it. Ordinary paths are unchanged."""
    import hashlib

    parts = []
    for part in relpath.split("/"):
        p = part.replace("\\", "_")
        if p in ("", ".", ".."):
            p = "__" if p == ".." else "_"
        if len(p.encode("utf-8")) > MAX_COMPONENT:
            stem, dot, ext = p.rpartition(".")
            if len(ext) > 10:  # no extension to keep
                stem, dot, ext = p, "", ""
            digest = hashlib.sha1(p.encode("utf-8", "surrogatepass")).hexdigest()[:10]
            keep = (stem or p).encode("utf-8")[: MAX_COMPONENT - 32].decode("utf-8", "ignore")
            p = f"{keep}-{digest}{dot}{ext}"
        parts.append(p)
    return "/".join(parts)


def export_names(relpaths: Iterable[str]) -> dict[str, str]:
    """relpath → `export_name`, unique: a changed name that another path already has (`a\\b.jpg` next to
    `a_b.jpg`) gets a hash of its path before its extension."""
    import hashlib

    names = {r: export_name(r) for r in sorted(relpaths)}
    seen = {r for r, name in names.items() if name == r}  # a path that is its own name keeps it
    out = {}
    for r, name in names.items():
        if name != r and name in seen:
            p = PurePosixPath(name)
            digest = hashlib.sha1(r.encode("utf-8", "surrogatepass")).hexdigest()[:8]
            name = str(p.with_name(f"{p.stem}-{digest}{p.suffix}"))
        seen.add(name)
        out[r] = name
    return out


def is_within(child: str | Path, parent: str | Path) -> bool:
    c, p = Path(child).resolve(), Path(parent).resolve()
    return c == p or p in c.parents


def remove_stale_temp_files(root: str | Path) -> int:
    """Delete temporary files that a killed write of autolabel left behind (`.al-*.tmp`, only those: never
    a file of someone else's), under the run lock. Returns how many."""
    n = 0
    for p in Path(root).rglob(".al-*.tmp"):
        if p.is_file() or p.is_symlink():
            p.unlink()
            n += 1
    return n


_HELD: dict[str, int] = {}  # lock files this process holds → how many nested holders
_HELD_GUARD = threading.Lock()


class RunLock:
    """An exclusive lock on a run directory (`.lock`, flock): a second `autolabel label` or `export` on
    the same directory is refused (or, with `wait`, waits its turn) instead of interleaving with the
    first, and the message says which process holds it and what it is doing. Re-entrant within one
    process (label, then its export). Released when the process ends, however it ends."""

    @classmethod
    def check(cls, run_dir: str | Path) -> None:
        """Raise if another process holds the lock; creates nothing."""
        if (Path(run_dir) / ".lock").exists():
            with cls(run_dir, create=False):
                pass

    def __init__(
        self, run_dir: str | Path, create: bool = True, what: str = "labeling", wait: float = 0.0, tidy: bool = False
    ) -> None:
        self.path = Path(run_dir) / ".lock"
        self.create, self.what, self.wait = create, what, wait
        self.tidy = tidy  # an output folder that is not a run: the lock file goes when released (if made here)
        self._made = False
        self._fd: int | None = None
        self._key = ""

    def __enter__(self) -> RunLock:
        import fcntl

        if self.create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = str(self.path.absolute())
        with _HELD_GUARD:
            if self._key in _HELD:  # this process holds it already
                _HELD[self._key] += 1
                return self
        self._made = self.create and not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if self.create else 0), FILE_MODE)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                self._refuse(fd)
        if self.create:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {self.what}".encode())
        self._fd = fd
        with _HELD_GUARD:
            _HELD[self._key] = 1
        return self

    def _refuse(self, fd: int) -> None:
        holder = os.read(fd, 64).decode(errors="replace").split()
        os.close(fd)
        pid = holder[0] if holder else "?"
        doing = holder[1] if len(holder) > 1 else "labeling"
        raise UsageError(
            f"another autolabel process (pid {pid}) is {doing} into '{self.path.parent}'",
            hint="wait for it to finish (a rerun then resumes), or choose another --output",
        )

    def __exit__(self, *exc: object) -> None:
        with _HELD_GUARD:
            if self._key not in _HELD:
                return
            _HELD[self._key] -= 1
            if _HELD[self._key] > 0:
                return
            del _HELD[self._key]
        if self._fd is not None:
            if self.tidy and self._made:  # never leave a .lock in a folder autolabel does not own
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            os.close(self._fd)  # closing releases the flock; a run's file stays (harmless, reused next time)
            self._fd = None
