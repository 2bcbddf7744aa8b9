"""The run store: one SQLite file in the output directory, one committed row per image.

Each image's result is committed as soon as it is made, so a killed run loses at most the images in
flight. The store is keyed by relative path and carries the run's fingerprint (ontology, models,
settings); opening it with a different fingerprint is an error unless the caller overwrites.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import RunStoreError
from .types import Detections, ImageResult

STORE_NAME = "run.sqlite"
RESULT_FORMAT = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    relpath TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('done', 'skipped')),
    width INTEGER, height INTEGER, reason TEXT, result TEXT, updated REAL NOT NULL
);
"""


@dataclass(frozen=True)
class RunMeta:
    """What a run directory records about itself (enough to export without the ontology file)."""

    fingerprint: str
    input_root: str
    classes: list[str]
    settings: dict[str, Any]


def store_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / STORE_NAME


def detections_to_json(det: Detections) -> str:
    from .masks import encode_rle

    payload = {
        "xyxy": [[round(float(v), 3) for v in box] for box in det.xyxy],
        "class_id": [int(c) for c in det.class_id],
        "confidence": None if det.confidence is None else [round(float(c), 6) for c in det.confidence],
        "prompt": list(det.prompt),
        "rle": None if det.masks is None else [encode_rle(m)["counts"] for m in det.masks],
    }
    return json.dumps(payload, separators=(",", ":"))


def detections_from_json(text: str, width: int, height: int, decode_masks: bool = True) -> Detections:
    from .masks import decode_rle

    d = json.loads(text)
    masks = None
    if d["rle"] is not None and decode_masks:
        masks = np.zeros((len(d["rle"]), height, width), dtype=bool)
        for i, counts in enumerate(d["rle"]):
            masks[i] = decode_rle({"size": [height, width], "counts": counts})
    return Detections(xyxy=np.asarray(d["xyxy"], dtype=np.float64).reshape(-1, 4), class_id=d["class_id"],
                      confidence=d["confidence"], prompt=d["prompt"], masks=masks)


class RunStore:
    """A SQLite run store. Use one instance per thread (SQLite connections are not shared)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise RunStoreError(f"{self.path}: not a usable autolabel run store ({e})",
                                hint="choose another --output directory, or delete this file to start over") from None

    # ---------------------------------------------------------------- meta
    def get_meta(self) -> RunMeta | None:
        rows = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        if "fingerprint" not in rows:
            return None
        return RunMeta(rows["fingerprint"], rows["input_root"], json.loads(rows["classes"]),
                       json.loads(rows["settings"]))

    def set_meta(self, meta: RunMeta) -> None:
        with self.transaction():
            for k, v in (("fingerprint", meta.fingerprint), ("input_root", meta.input_root),
                         ("classes", json.dumps(meta.classes)), ("settings", json.dumps(meta.settings, sort_keys=True)),
                         ("result_format", str(RESULT_FORMAT))):
                self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (k, v))

    def clear(self) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM images")
            self.conn.execute("DELETE FROM meta")

    # ---------------------------------------------------------------- rows
    def done_relpaths(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT relpath FROM images WHERE status = 'done'")}

    def put_result(self, result: ImageResult) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO images (relpath, status, width, height, reason, result, updated) "
            "VALUES (?, 'done', ?, ?, NULL, ?, ?)",
            (result.relpath, result.width, result.height, detections_to_json(result.detections), time.time()),
        )

    def put_skipped(self, relpath: str, reason: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO images (relpath, status, width, height, reason, result, updated) "
            "VALUES (?, 'skipped', NULL, NULL, ?, NULL, ?)", (relpath, reason, time.time()))

    def skipped(self) -> list[tuple[str, str]]:
        return list(self.conn.execute("SELECT relpath, reason FROM images WHERE status = 'skipped' ORDER BY relpath"))

    def count_done(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM images WHERE status = 'done'").fetchone()[0])

    def iter_image_sizes(self) -> Iterator[tuple[str, int, int]]:
        """(relpath, width, height) of done images, sorted by relative path."""
        yield from self.conn.execute(
            "SELECT relpath, width, height FROM images WHERE status = 'done' ORDER BY relpath")

    def iter_results(self, decode_masks: bool = True) -> Iterator[ImageResult]:
        """Done images sorted by relative path, one at a time (never all masks in memory)."""
        cur = self.conn.execute(
            "SELECT relpath, width, height, result FROM images WHERE status = 'done' ORDER BY relpath")
        for relpath, w, h, text in cur:
            yield ImageResult(relpath, w, h, detections_from_json(text, w, h, decode_masks))

    def transaction(self) -> Any:
        return _Transaction(self.conn)

    def close(self) -> None:
        self.conn.close()


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
