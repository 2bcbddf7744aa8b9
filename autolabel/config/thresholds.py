"""Per-class box thresholds as a file: the shape of the ontology's `classes:` section.

    classes:
      car: {box_threshold: 0.42}
      truck: {box_threshold: 0.31}

`autolabel tune` writes it; `autolabel export RUN --thresholds FILE` applies it (no model loaded).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from autolabel.config.load import read_yaml
from autolabel.errors import UsageError, shown


def load_thresholds(path: str | Path) -> dict[str, float]:
    """{class name: box threshold}. Every problem is reported together, with the file and key."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"thresholds file '{p}' not found")
    data = read_yaml(p, UsageError)  # UTF-8, duplicate keys refused
    if not isinstance(data, dict) or set(data) != {"classes"} or not isinstance(data["classes"], dict):
        raise UsageError(
            f"{p}: expected one top-level key 'classes:' mapping class names to {{box_threshold: x}}",
            hint="e.g.\n  classes:\n    car: {box_threshold: 0.4}",
        )
    out: dict[str, float] = {}
    problems = []
    for name, v in data["classes"].items():
        t = v.get("box_threshold") if isinstance(v, dict) else None
        if not isinstance(v, dict) or set(v) != {"box_threshold"}:
            problems.append(f"{p}: classes.{name}: expected {{box_threshold: x}}, got {shown(v)}")
        elif isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:
            problems.append(f"{p}: classes.{name}.box_threshold: must be a number in [0, 1], got {shown(t)}")
        else:
            out[str(name)] = float(t)
    if problems:
        raise UsageError("\n  ".join(problems))
    return out


def thresholds_yaml(per_class: dict[str, float], notes: dict[str, str] | None = None) -> str:
    lines = [
        "# per-class box thresholds (autolabel export RUN --thresholds THIS_FILE, or paste into the ontology)",
        "classes:",
    ]
    for name, t in per_class.items():
        note = (notes or {}).get(name)
        lines.append(
            f"  {yaml.safe_dump(name, default_style=None).splitlines()[0]}: {{box_threshold: {t:.4f}}}"
            + (f"  # {note}" if note else "")
        )
    return "\n".join(lines) + "\n"
