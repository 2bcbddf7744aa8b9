"""Which decisions each export of a run was written with, and which exports are out of step.

Every full export of a run (into the run directory, and the FiftyOne dataset) records the digest of the
decision set it applied (`DecisionSettings`: thresholds, NMS, clean-up, …) in the run store. When the run's
decisions change (`export --box-threshold`, `--thresholds`, `--reset-thresholds`, a relabel), every later
command that touches the run names the exports written with other decisions and how to refresh them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from autolabel.decisions import DecisionSettings
from autolabel.run.run import Run

KEY = "exports"


def decisions_digest(dec: DecisionSettings) -> str:
    """A short, stable name of one decision set."""
    return hashlib.sha1(json.dumps(dec.to_json(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Stale:
    format: str  # `yolo`, `fiftyone`
    applied: str  # the decisions it was written with (`ontology + --box-threshold 0.8`)


def record_exports(run: Run, formats: list[str], dec: DecisionSettings, applied: str) -> None:
    """Record that `formats` were just written whole with `dec` (described as `applied`)."""
    if not formats:
        return
    records = dict(run.store.get_value(KEY) or {})
    digest = decisions_digest(dec)
    for fmt in formats:
        records[fmt] = {"decisions": digest, "applied": applied}
    run.store.set_value(KEY, records)


def stale_exports(run: Run, dec: DecisionSettings | None = None) -> list[Stale]:
    """The run's exports written with other decisions than `dec` (default: the run's own)."""
    records = run.store.get_value(KEY) or {}
    digest = decisions_digest(dec if dec is not None else run.decisions())
    return [
        Stale(fmt, str(r.get("applied", "?")))
        for fmt, r in sorted(records.items())
        if isinstance(r, dict) and r.get("decisions") != digest
    ]


def stale_message(run: Run, dec: DecisionSettings | None = None, skip: tuple[str, ...] = ()) -> str | None:
    """One line naming the exports out of step with the run's decisions and the command that refreshes them."""
    stale = [s for s in stale_exports(run, dec) if s.format not in skip]
    if not stale:
        return None
    what = "; ".join(f"{s.format} (written with: {s.applied})" for s in stale)
    now = run.applied().describe()
    fmts = ",".join(s.format for s in stale)
    return f"out of step with the run's decisions ({now}): {what} — refresh: autolabel export {run.dir} -f {fmts}"
