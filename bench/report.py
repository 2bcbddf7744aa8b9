"""`autolabel report` on a big run: a store of 100,000 labeled images (the stand-in models' candidates of
nine images, repeated under other names), the report written from an even sample, timed.

    python -m bench.report [--images 100000] [--json FILE]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit


def big_run(work: Path, n: int) -> Path:
    from autolabel.config.load import load_ontology
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RunSettings
    from tests.fakes import FakeDetector, FakeSegmenter
    from tests.helpers import write_images

    ont = work / "ontology.yaml"
    ont.write_text(
        "ontology:\n  red square: square\n  blue ring: ring\ndetector:\n  backend: tests.fakes:FakeDetector\n"
        "segmenter:\n  backend: tests.fakes:FakeSegmenter\n"
    )
    write_images(work / "in", [f"img{i}.png" for i in range(9)])
    run = work / "run"
    run_labeling(load_ontology(ont), work / "in", run, RunSettings(), backends=(FakeDetector(), FakeSegmenter()))
    with sqlite3.connect(run / "run.sqlite") as db:
        rows = db.execute("SELECT status, width, height, reason, result, updated, signature FROM images").fetchall()
        db.executemany(
            "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((f"copies/{k:06d}.png", *rows[k % len(rows)]) for k in range(n - len(rows))),
        )
    return run


def run(n: int, work: Path) -> dict[str, Any]:
    from autolabel.quality.report_html import write_report

    run_dir = big_run(work, n)
    t = time.perf_counter()
    page = write_report(run_dir)
    seconds = time.perf_counter() - t
    return {"images": n, "report_seconds": round(seconds, 2), "report_bytes": page.stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(a.images, Path(tmp))
    emit(result, a.json)


if __name__ == "__main__":
    main()
