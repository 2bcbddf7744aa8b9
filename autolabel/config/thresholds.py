"""Per-class box thresholds as a file: the shape of the ontology's `classes:` section.

    classes:
      car: {box_threshold: 0.42}
      truck: {box_threshold: 0.31}

`autolabel tune` writes it; `autolabel export RUN --thresholds FILE` applies it (no model loaded).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from autolabel.config.load import read_yaml
from autolabel.errors import UsageError, shown


def load_thresholds(path: str | Path) -> dict[str, float]:
    """{class name: box threshold}. Every problem is reported together, with the file and key."""
    return read_thresholds_file(path)[0]


def read_thresholds_file(
    path: str | Path, classes: list[str] | tuple[str, ...] | None = None
) -> tuple[dict[str, float], tuple[str, ...]]:
    """({class name: box threshold}, prompts switched off). Every problem is reported together, and with
    the run's `classes` a class name it does not have (with the closest one it has)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"thresholds file '{p}' not found")
    data = read_yaml(p, UsageError)  # UTF-8, duplicate keys refused
    if (
        not isinstance(data, dict)
        or not set(data) <= {"classes", "prompts"}
        or not isinstance(data.get("classes", {}), dict)
    ):
        raise UsageError(
            f"{p}: expected 'classes:' mapping class names to {{box_threshold: x}} (and optionally 'prompts:' "
            "mapping prompts to off)",
            hint="e.g.\n  classes:\n    car: {box_threshold: 0.4}\n  prompts:\n    lorry: off",
        )
    off, problems = _prompts_off(p, data.get("prompts"))
    out: dict[str, float] = {}
    for name, v in data.get("classes", {}).items():
        t = v.get("box_threshold") if isinstance(v, dict) else None
        if not isinstance(v, dict) or set(v) != {"box_threshold"}:
            problems.append(f"{p}: classes.{name}: expected {{box_threshold: x}}, got {shown(v)}")
        elif isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:
            problems.append(f"{p}: classes.{name}.box_threshold: must be a number in [0, 1], got {shown(t)}")
        else:
            out[str(name)] = float(t)
        if classes is not None and str(name) not in classes:
            close = difflib.get_close_matches(str(name), list(classes), n=1, cutoff=0.6)
            mean = f"did you mean '{close[0]}'?" if close else f"the run's classes: {', '.join(classes)}"
            problems.append(f"{p}: classes.{name}: not a class of the run; {mean}")
    if problems:
        raise UsageError("\n  ".join(problems))
    return out, off


def tune_notes(path: str | Path) -> dict[str, str]:
    """class → why `autolabel tune` chose its threshold, from the report tune writes beside the thresholds
    file (`thresholds.json`); empty for a file written by hand."""
    import json

    report = Path(path).with_suffix(".json")
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        images = int(data.get("images", 0))
        out = {}
        for c in data.get("classes", []):
            note = str(c.get("note") or f"best {data.get('metric', 'f1')} on {images} hand-labeled images")
            out[str(c["name"])] = f"{note}; {int(c.get('n_gt', 0))} objects, {int(c.get('n_det', 0))} detections"
        return out
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _prompts_off(p: Path, m: object) -> tuple[tuple[str, ...], list[str]]:
    if m is None:
        return (), []
    if not isinstance(m, dict) or not all(v is False or v == "off" for v in m.values()):
        return (), [f"{p}: prompts: expected prompt: off, got {shown(m)}"]
    return tuple(str(k) for k in m), []


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
