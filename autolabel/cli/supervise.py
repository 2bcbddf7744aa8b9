"""`label --ray` runs the Ray driver in a child process that this one watches.

When a raylet or a dashboard agent dies, Ray's core worker ends the driver process itself (no Python
exception, only Ray's own log lines): a parent is the only place left to say what happened. The child is
this same command (in the same process group, so killing the group still stops everything it started);
Ctrl-C and SIGTERM sent to the parent are passed on, and the child takes one interrupt however it arrives
(a terminal's Ctrl-C reaches both). When the child ends with an error it did not report itself, the parent
says so, and that a rerun resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

CHILD = "AUTOLABEL_SUPERVISED"  # set in the child: where it notes that it reported its own error
SAID = "said"


def is_child() -> bool:
    return bool(os.environ.get(CHILD))


def note_reported() -> None:
    """In the child: its error was reported (`error:` printed), the parent need not."""
    where = os.environ.get(CHILD)
    if where:
        try:
            Path(where).write_text(SAID)
        except OSError:
            pass


def take_one_interrupt() -> None:
    """In the child: a Ctrl-C that arrives twice at once (the terminal's and the parent's) is one."""
    last = [0.0]

    def handler(signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if now - last[0] < 1.0:
            return
        last[0] = now
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def supervise(run_dir: Path) -> int:
    """Run this command again as a watched child; its exit code (1, with an `error:` line, when it was
    ended by something it could not report)."""
    fd, marker = tempfile.mkstemp(prefix="autolabel-", suffix=".said")
    os.close(fd)
    os.unlink(marker)
    proc = subprocess.Popen([sys.executable, "-m", "autolabel.cli", *sys.argv[1:]], env={**os.environ, CHILD: marker})

    def forward(signum: int, frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()  # a signal meanwhile runs `forward`; the wait goes on (PEP 475)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    said = Path(marker).exists()
    if said:
        os.unlink(marker)
    if code in (0, 3, 130) or said:
        return code
    sys.stderr.write(
        f"error: the labeling process ended without a word (exit {code}): under --ray this is Ray ending the "
        "driver when its raylet, dashboard agent or cluster went away\n"
        f"hint: finished images are kept and a rerun of the same command resumes; Ray's own messages are in "
        f"{run_dir / 'ray.log'}\n"
    )
    return 1
