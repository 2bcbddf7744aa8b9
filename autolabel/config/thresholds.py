"""Per-class box thresholds as a file: the shape of the ontology's `classes:` section.

    classes:
      car: {box_threshold: 0.42}
      truck: {box_threshold: 0.31}

`autolabel tune` writes it; `autolabel export RUN --thresholds FILE` applies it (no model loaded). For an
ensemble tune also writes how each class fuses its detectors and each detector's score calibration:

    classes:
      car: {box_threshold: 0.42, fusion: max}
    fusion:
      calibration: [[5.1, -2.3], [9.8, -1.2]]   # per detector in the ontology's order: sigmoid(a·score + b)
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
        or not set(data) <= {"classes", "prompts", "fusion"}
        or not isinstance(data.get("classes", {}), dict)
    ):
        raise UsageError(
            f"{p}: expected 'classes:' mapping class names to {{box_threshold: x}} (and optionally 'prompts:' "
            "mapping prompts to off)",
            hint="e.g.\n  classes:\n    car: {box_threshold: 0.4}\n  prompts:\n    lorry: off",
        )
    off, problems = _prompts_off(p, data.get("prompts"))
    problems += _fusion_problems(p, data)
    out: dict[str, float] = {}
    for name, v in data.get("classes", {}).items():
        t = v.get("box_threshold") if isinstance(v, dict) else None
        if not isinstance(v, dict) or "box_threshold" not in v or not set(v) <= {"box_threshold", "fusion"}:
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


def _fusion_problems(p: Path, data: dict) -> list[str]:
    from autolabel.fusion import SCORES

    out = []
    for name, v in data.get("classes", {}).items():
        if isinstance(v, dict) and "fusion" in v and v["fusion"] not in SCORES:
            out.append(f"{p}: classes.{name}.fusion: must be one of {', '.join(SCORES)}, got {shown(v['fusion'])}")
    f = data.get("fusion")
    if f is None:
        return out
    cal = f.get("calibration") if isinstance(f, dict) else None
    ok = isinstance(f, dict) and set(f) == {"calibration"} and isinstance(cal, list)
    ok = ok and all(
        isinstance(ab, list) and len(ab) == 2 and all(_finite(x) for x in ab)
        for ab in cal  # type: ignore[union-attr]
    )
    if not ok:
        out.append(f"{p}: fusion: expected {{calibration: [[a, b], ...]}} (one pair per detector), got {shown(f)}")
    return out


def _finite(x: object) -> bool:
    import math

    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def read_fusion(path: str | Path) -> tuple[dict[str, str], tuple[tuple[float, float], ...]]:
    """An ensemble's choices in a thresholds file (checked by `read_thresholds_file` first): ({class: mean |
    max}, per-detector calibration (a, b), () when the file has none)."""
    data = read_yaml(Path(path), UsageError)
    methods = {str(n): str(v["fusion"]) for n, v in data.get("classes", {}).items() if "fusion" in v}
    cal = (data.get("fusion") or {}).get("calibration") or []
    return methods, tuple((float(a), float(b)) for a, b in cal)


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


def thresholds_yaml(
    per_class: dict[str, float],
    notes: dict[str, str] | None = None,
    methods: dict[str, str] | None = None,
    calibration: tuple[tuple[float, float], ...] = (),
) -> str:
    """The file `tune` writes: per-class thresholds (and an ensemble's fusion per class and calibration)."""
    lines = [
        "# per-class box thresholds (autolabel export RUN --thresholds THIS_FILE, or paste into the ontology)",
        "classes:",
    ]
    for name, t in per_class.items():
        note = (notes or {}).get(name)
        fusion = f", fusion: {methods[name]}" if methods and name in methods else ""
        lines.append(
            f"  {yaml.safe_dump(name, default_style=None).splitlines()[0]}: {{box_threshold: {t:.4f}{fusion}}}"
            + (f"  # {note}" if note else "")
        )
    if calibration:
        pairs = ", ".join(f"[{a:.6g}, {b:.6g}]" for a, b in calibration)
        lines += [
            "fusion:  # each detector's score calibration, in the ontology's order: sigmoid(a·score + b)",
            f"  calibration: [{pairs}]",
        ]
    return "\n".join(lines) + "\n"
