"""The run store: one SQLite file in the output directory, one committed row per image.

Each image's candidates (every detection above the candidate floor, with its mask) are committed as
soon as they are made, so a killed run loses at most the images in flight. Rows are keyed by relative
path and carry the file's signature (size + mtime) so a changed picture is relabeled, never served
stale. The store carries the run's fingerprint (what changes candidates) and its input folder; the
decisions (thresholds, NMS, clean-up) are applied when reading, see `decisions.py`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.errors import RunStoreError
from autolabel.run.store_health import quick_check, store_error
from autolabel.types import CANDIDATES_FORMAT, CandidateResult, Candidates, RleMasks

STORE_NAME = "run.sqlite"
RESULT_FORMAT = CANDIDATES_FORMAT  # 1: filtered detections (before decide-later); 2: candidates + signatures
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    relpath TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('done', 'skipped')),
    width INTEGER, height INTEGER, reason TEXT, result TEXT, updated REAL NOT NULL,
    signature TEXT
);
CREATE TABLE IF NOT EXISTS clips (relpath TEXT PRIMARY KEY, signature TEXT NOT NULL, info TEXT NOT NULL);
"""


@dataclass(frozen=True)
class RunMeta:
    """What a run directory records about itself (enough to export without the ontology file).

    `settings` are the fingerprinted inference settings (flat `key: value`), `prompts` every prompt
    given to the detector (ontology prompts, then negatives), `decisions` the decision settings of the
    last `label` run (what `export` applies unless overridden)."""

    fingerprint: str
    input_root: str
    classes: list[str]
    settings: dict[str, Any]
    prompts: list[str] = field(default_factory=list)
    decisions: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)  # the last export's threshold overrides

    @property
    def candidate_floor(self) -> float:
        """The lowest score stored as a candidate: a threshold under it cannot be honoured."""
        return float(self.settings.get("detector.candidate_floor", 0.0))

    @property
    def has_masks(self) -> bool:
        """False for a box-only run (`segmenter: none`)."""
        return bool(self.settings.get("segmenter.backend") != "none")


def store_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / STORE_NAME


def candidates_to_json(c: Candidates) -> str:
    """Compact JSON of one image's candidates; masks as COCO compressed RLE counts."""
    flat = [round(v, 3) for v in c.xyxy.ravel().tolist()]  # Python floats first: 3× faster than per scalar
    payload = {
        "xyxy": [flat[i : i + 4] for i in range(0, len(flat), 4)],
        "score": None if c.score is None else [round(v, 6) for v in c.score.tolist()],
        "prompt_index": c.prompt_index.tolist(),
        "rle": None if c.masks is None else [_counts(r) for r in c.masks.rles],
        "mask_score": None if c.mask_score is None else [round(v, 6) for v in c.mask_score.tolist()],
    }
    if c.track_id is not None and c.keyframe is not None:  # a frame tracked at inference (tracker: sam2)
        payload.update(track_id=c.track_id.tolist(), keyframe=[int(k) for k in c.keyframe.tolist()])
    if c.source is not None:  # an ensemble: which detector found each candidate
        payload["source"] = c.source.tolist()
    if c.presence is not None:  # SAM 3's presence score of each candidate's prompt
        payload["presence"] = [round(v, 6) for v in c.presence.tolist()]
    if c.verified is not None:  # the verifier's answer; null where it was not asked
        payload["verified"] = [None if v != v else round(v, 6) for v in c.verified.tolist()]
    return json.dumps(payload, separators=(",", ":"))


def _counts(rle: dict) -> str:
    counts = rle["counts"]
    return counts.decode("ascii") if isinstance(counts, bytes) else counts


def candidates_from_json(text: str, width: int, height: int) -> Candidates:
    d = json.loads(text)
    masks = None
    if d["rle"] is not None:
        masks = RleMasks([{"size": [height, width], "counts": c.encode("ascii")} for c in d["rle"]], height, width)
    return Candidates(
        xyxy=np.asarray(d["xyxy"], dtype=np.float64).reshape(-1, 4),
        score=d["score"],
        prompt_index=d["prompt_index"],
        masks=masks,
        mask_score=d.get("mask_score"),
        track_id=d.get("track_id"),
        keyframe=d.get("keyframe"),
        source=d.get("source"),
        presence=d.get("presence"),
        verified=None if d.get("verified") is None else np.asarray(d["verified"], dtype=np.float64),
    )


def file_signature(path: str | Path) -> str:
    """What an image file was when it was labeled: size and modification time (ns)."""
    st = Path(path).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


class RunStore:
    """A SQLite run store. Use one instance per thread (SQLite connections are not shared)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
            cols = {r[1] for r in self.conn.execute("PRAGMA table_info(images)")}
            if "signature" not in cols:  # a format-1 store: readable enough to say it must be relabeled
                self.conn.execute("ALTER TABLE images ADD COLUMN signature TEXT")
        except (sqlite3.Error, OSError) as e:
            raise store_error(self.path, e) from None

    # ---------------------------------------------------------------- meta
    def result_format(self) -> int | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'result_format'").fetchone()
        return int(row[0]) if row else None

    def check_format(self) -> None:
        """A store written by another autolabel version is never misread."""
        fmt = self.result_format()
        has_rows = self.conn.execute("SELECT 1 FROM images LIMIT 1").fetchone() is not None
        if fmt is not None and fmt > RESULT_FORMAT:
            raise RunStoreError(
                f"{self.path}: this run was made by a newer autolabel (store format {fmt}, this version reads "
                f"{RESULT_FORMAT}); it is left as it is",
                hint="upgrade autolabel (pip install -U autolabel) to use it; --overwrite would discard it",
            )
        if (fmt is None and has_rows) or (fmt is not None and fmt != RESULT_FORMAT):
            raise RunStoreError(
                f"{self.path}: this run was made by an older autolabel (store format {fmt or 1}, this version "
                f"reads {RESULT_FORMAT}): it keeps only filtered detections, not the candidates that thresholds "
                "are applied to",
                hint="relabel it: rerun the same `autolabel label` command with --overwrite (or choose another -o)",
            )

    def get_meta(self) -> RunMeta | None:
        self.check_format()
        rows = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        if "fingerprint" not in rows:
            return None
        return RunMeta(
            rows["fingerprint"],
            rows["input_root"],
            json.loads(rows["classes"]),
            json.loads(rows["settings"]),
            json.loads(rows.get("prompts", "[]")),
            json.loads(rows.get("decisions", "{}")),
            json.loads(rows.get("overrides", "{}")),
        )

    def set_meta(self, meta: RunMeta) -> None:
        with self.transaction():
            for k, v in (
                ("fingerprint", meta.fingerprint),
                ("input_root", meta.input_root),
                ("classes", json.dumps(meta.classes)),
                ("settings", json.dumps(meta.settings, sort_keys=True)),
                ("prompts", json.dumps(meta.prompts)),
                ("decisions", json.dumps(meta.decisions, sort_keys=True)),
                ("result_format", str(RESULT_FORMAT)),
            ):
                self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (k, v))

    def set_overrides(self, overrides: dict[str, Any]) -> None:
        """Record the threshold overrides an export was made with (every later command applies them)."""
        with self.transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('overrides', ?)",
                (json.dumps(overrides, sort_keys=True),),
            )

    def get_value(self, key: str) -> Any:
        """A JSON value kept beside the run's metadata (e.g. `exports`, what each export was written with)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_value(self, key: str, value: Any) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value, sort_keys=True))
            )

    def clear(self) -> None:
        with self.transaction():
            for table in ("images", "meta", "clips"):
                self.conn.execute(f"DELETE FROM {table}")

    # ---------------------------------------------------------------- rows
    def done_signatures(self) -> dict[str, str | None]:
        """relpath → file signature of every done image."""
        rows = self.conn.execute(
            "SELECT relpath, signature FROM images WHERE status = 'done' AND width > 0 AND height > 0"
        )  # a damaged row (no size) is not done: a rerun relabels it
        return dict(self._rows(rows))

    def put_result(self, result: CandidateResult, signature: str | None = None) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO images (relpath, status, width, height, reason, result, updated, signature) "
            "VALUES (?, 'done', ?, ?, NULL, ?, ?, ?)",
            (
                result.relpath,
                result.width,
                result.height,
                candidates_to_json(result.candidates),
                time.time(),
                signature,
            ),
        )

    def forget(self, relpaths: list[str]) -> None:
        """Drop rows (images and videos removed from the input folder are no longer part of the run)."""
        with self.transaction():
            for table in ("images", "clips"):
                self.conn.executemany(f"DELETE FROM {table} WHERE relpath = ?", [(r,) for r in relpaths])

    def put_clip(self, relpath: str, signature: str, info: dict[str, Any]) -> None:
        """Record a video whose sampled frames were written (`run.clips`); its skipped row, if any, goes."""
        try:
            with self.transaction():
                self.conn.execute("DELETE FROM images WHERE relpath = ?", (relpath,))
                self.conn.execute(
                    "INSERT OR REPLACE INTO clips (relpath, signature, info) VALUES (?, ?, ?)",
                    (relpath, signature, json.dumps(info, separators=(",", ":"))),
                )
        except sqlite3.Error as e:  # a full disk: said, and a rerun extracts the clip again
            raise store_error(self.path, e) from None

    def clips(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """relpath → (signature, info) of every recorded video."""
        rows = self.conn.execute("SELECT relpath, signature, info FROM clips ORDER BY relpath")
        return {r: (sig, json.loads(info)) for r, sig, info in rows}

    def put_skipped(self, relpath: str, reason: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO images (relpath, status, width, height, reason, result, updated) "
            "VALUES (?, 'skipped', NULL, NULL, ?, NULL, ?)",
            (relpath, reason, time.time()),
        )

    def skipped(self) -> list[tuple[str, str]]:
        return list(self.conn.execute("SELECT relpath, reason FROM images WHERE status = 'skipped' ORDER BY relpath"))

    def count_done(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM images WHERE status = 'done'").fetchone()[0])

    def _rows(self, rows: Iterable[Any]) -> Iterator[Any]:
        """Rows of a query; a damaged page says so (with how to recover) instead of a raw SQLite error."""
        try:
            yield from rows
        except sqlite3.ProgrammingError:  # used after close (a generator finalised late): not damage
            raise
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            raise self.damaged(e) from None

    def iter_image_sizes(self) -> Iterator[tuple[str, int, int]]:
        """(relpath, width, height) of done images, sorted by relative path."""
        yield from self._rows(
            self.conn.execute("SELECT relpath, width, height FROM images WHERE status = 'done' ORDER BY relpath")
        )

    def iter_candidates(self, relpaths: Iterable[str] | None = None) -> Iterator[CandidateResult]:
        """Done images sorted by relative path, one at a time (masks stay RLE until an exporter needs one);
        only those in `relpaths` when given (each looked up by its key: nothing else is read)."""
        if relpaths is None:
            rows: Iterable[tuple[str, int, int, str]] = self.conn.execute(
                "SELECT relpath, width, height, result FROM images WHERE status = 'done' ORDER BY relpath"
            )
        else:
            rows = (
                row
                for r in sorted(set(relpaths))
                for row in self.conn.execute(
                    "SELECT relpath, width, height, result FROM images WHERE status = 'done' AND relpath = ?", (r,)
                )
            )
        for relpath, w, h, text in self._rows(rows):
            if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
                raise RunStoreError(
                    f"{self.path}: the row of '{relpath}' is damaged (image size {w}x{h})",
                    hint="rerun the same `autolabel label` command: it relabels damaged rows, then export again",
                )
            yield CandidateResult(relpath, w, h, candidates_from_json(text, w, h))

    def damaged(self, e: BaseException) -> RunStoreError:
        """What to say when reading the store failed: whether its pages are damaged, and how to recover."""
        problems = quick_check(self.path)
        if not problems:
            return store_error(self.path, e)
        return RunStoreError(
            f"{self.path}: the run store is damaged ({problems[0]}"
            + (f"; {len(problems) - 1} more problems" if len(problems) > 1 else "")
            + f"; reading it failed with: {e})",
            hint="rerun the same `autolabel label` command with --overwrite to relabel (the damaged store is kept "
            f"beside it as {self.path.name}.damaged-…); to salvage the readable images first: "
            f"sqlite3 {self.path} .recover | sqlite3 recovered.sqlite. Exports already written are untouched",
        )

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
