"""Threshold overrides: choices made after labeling (`--box-threshold`, `--thresholds FILE` with per-class
thresholds and prompts switched off), recorded by an export and applied by every later command."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from autolabel.decisions import DecisionSettings
from autolabel.errors import UsageError


@dataclass(frozen=True)
class ThresholdOverrides:
    """Threshold choices made after labeling (`--box-threshold`, `--thresholds FILE`), on top of the
    ontology's. An export records the ones it was made with in the run; every later command (export, eval,
    preview, review, tune, a `label` rerun) applies them until another export replaces or resets them."""

    box_threshold: float | None = None
    class_thresholds: dict[str, float] = field(default_factory=dict)
    source: str = ""  # where `class_thresholds` came from (a file name)
    prompts_off: tuple[str, ...] = ()  # prompts switched off (`prompts: {lorry: off}` in a thresholds file)
    notes: dict[str, str] = field(default_factory=dict)  # class → why `autolabel tune` chose its threshold

    def chosen(self) -> dict[str, str]:
        """class → who set its threshold on purpose and why (a thresholds file, tune's note): such a class is
        not flagged as suspicious when it keeps little."""
        src = self.source or "a thresholds file"
        out = {}
        for name in self.class_thresholds:
            note = self.notes.get(name)
            out[name] = f"chosen by autolabel tune in {src} ({note})" if note else f"set in {src}"
        return out

    def __bool__(self) -> bool:
        return self.box_threshold is not None or bool(self.class_thresholds) or bool(self.prompts_off)

    def apply(self, dec: DecisionSettings) -> DecisionSettings:
        ontology_prompts = dec.prompts[: len(dec.prompt_class)]
        unknown = [p for p in self.prompts_off if p not in ontology_prompts]
        if unknown:
            raise UsageError(
                f"prompts off: {', '.join(unknown)} is not a prompt of the run",
                hint="its prompts: " + ", ".join(ontology_prompts),
            )
        return replace(dec.with_thresholds(self.box_threshold, self.class_thresholds), prompts_off=self.prompts_off)

    def describe(self) -> str:
        """`ontology`, or e.g. `ontology + tuned.yaml (12 class thresholds)` (what every command prints)."""
        parts = ["ontology"]
        if self.box_threshold is not None:
            parts.append(f"--box-threshold {self.box_threshold}")
        if self.class_thresholds:
            n = len(self.class_thresholds)
            parts.append(f"{self.source or 'class thresholds'} ({n} class threshold{'s' if n != 1 else ''})")
        if self.prompts_off:
            parts.append(f"prompts off: {', '.join(self.prompts_off)}")
        return " + ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) if self else {}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ThresholdOverrides:
        return cls(
            d.get("box_threshold"),
            dict(d.get("class_thresholds") or {}),
            str(d.get("source", "")),
            tuple(d.get("prompts_off") or ()),
            {str(k): str(v) for k, v in (d.get("notes") or {}).items()},
        )


def shadowed(base: DecisionSettings, applied: DecisionSettings) -> list[str]:
    """`class: ontology → applied` for every class whose threshold an override changes; one line
    `every class: x` when every class now has the same changed threshold (`--box-threshold x`)."""
    changed = [
        (c, a, b)
        for c, a, b in zip(base.classes, base.class_thresholds, applied.class_thresholds)
        if abs(a - b) > 1e-12
    ]
    if len(base.classes) > 1 and len(changed) == len(base.classes) and len(set(applied.class_thresholds)) == 1:
        was = sorted(set(base.class_thresholds))
        old = f"{was[0]:g}" if len(was) == 1 else f"{was[0]:g}–{was[-1]:g}"
        return [f"every class: {applied.class_thresholds[0]:g} (ontology: {old})"]
    return [f"{c}: {a:g} (ontology) → {b:g}" for c, a, b in changed]
