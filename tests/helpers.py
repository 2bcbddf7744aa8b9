"""Synthetic test images with known shapes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tests.fakes import BACKGROUND, COLORS


def scene(width: int = 160, height: int = 120, seed: int = 0) -> Image.Image:
    """A grey image with a red square, a blue ring (a disk with a hole) and a small green square."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(img)
    ox, oy = int(rng.integers(0, 10)), int(rng.integers(0, 10))
    d.rectangle([10 + ox, 10 + oy, 49 + ox, 44 + oy], fill=COLORS["red"])
    d.ellipse([70 + ox, 20 + oy, 120 + ox, 70 + oy], fill=COLORS["blue"])
    d.ellipse([90 + ox, 40 + oy, 100 + ox, 50 + oy], fill=BACKGROUND)  # the hole
    d.rectangle([130, 90, 141, 101], fill=COLORS["green"])
    return img


def write_images(root: Path, names: list[str], size: tuple[int, int] = (160, 120)) -> list[Path]:
    paths = []
    for i, name in enumerate(names):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        scene(*size, seed=i).save(p)
        paths.append(p)
    return paths


REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "autolabel.cli", *args],
        capture_output=True,
        text=True,
        env=e,
        cwd=cwd or REPO,
        timeout=300,
    )


def import_blocker(tmp_path: Path, packages: list[str]) -> dict[str, str]:
    """Environment for a subprocess in which importing any of `packages` fails (as if not installed)."""
    blocker = tmp_path / "block"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class _Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {tuple(packages)!r}:\n"
        "            raise ModuleNotFoundError(f'blocked: {name}')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    return {"PYTHONPATH": f"{blocker}{os.pathsep}{REPO}"}


@contextmanager
def hold_run_lock(run_dir: Path, what: str = "labeling") -> Iterator[subprocess.Popen[str]]:
    """Another process holding the run lock of `run_dir` (as `what`) until the block ends."""
    code = (
        "import sys, time\nfrom autolabel.fsutil import RunLock\n"
        "RunLock(sys.argv[1], what=sys.argv[2]).__enter__()\nprint('held', flush=True)\ntime.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-c", code, str(run_dir), what], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "held"
        yield p
    finally:
        p.kill()
        p.wait(timeout=30)


def done_rows(run: Path) -> int:
    """Images stored as done in a run's store (0 while it does not exist yet)."""
    import sqlite3

    try:
        with sqlite3.connect(run / "run.sqlite", timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM images WHERE status = 'done'").fetchone()[0])
    except sqlite3.Error:
        return 0


def killed_after(args: list[str], run: Path, rows: int, env: dict[str, str] | None = None, timeout: float = 240) -> int:
    """Run `autolabel ARGS`, SIGKILL its whole process group once `rows` images are stored in `run`;
    returns how many were stored."""
    import signal
    import time

    e = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "autolabel.cli", *args], env=e, start_new_session=True)
    deadline = time.monotonic() + timeout
    while done_rows(run) < rows and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return done_rows(run)
