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
    fusion_methods: dict[str, str] = field(default_factory=dict)  # an ensemble: class → mean | max (tune's)
    calibration: tuple[tuple[float, float], ...] = ()  # an ensemble: each detector's (a, b) (tune's)

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
        return bool(
            self.box_threshold is not None
            or self.class_thresholds
            or self.prompts_off
            or self.fusion_methods
            or self.calibration
        )

    def apply(self, dec: DecisionSettings) -> DecisionSettings:
        out = self._apply_thresholds(dec)
        if not self.fusion_methods and not self.calibration:
            return out
        f = dec.fusion
        if f is None:
            raise UsageError(
                f"{self.source or 'the thresholds file'}: fusion settings are for an ensemble (`detector:` a list); "
                "this run has one detector",
                hint="remove its `fusion:` section and the classes' `fusion:` keys",
            )
        if self.calibration and len(self.calibration) != len(f.sources):
            raise UsageError(
                f"{self.source}: fusion.calibration has {len(self.calibration)} pairs; the run has "
                f"{len(f.sources)} detectors: {', '.join(f.sources)}"
            )
        k = {c: j for j, c in enumerate(dec.classes)}
        chosen = {k[c]: m for c, m in self.fusion_methods.items() if c in k}
        fused = replace(f.with_class_score(len(dec.classes), chosen), calibration=self.calibration or f.calibration)
        return replace(out, fusion=fused)

    def _apply_thresholds(self, dec: DecisionSettings) -> DecisionSettings:
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
        if self.fusion_methods or self.calibration:
            parts.append("ensemble fusion and calibration")
        return " + ".join(parts)

    def to_json(self) -> dict[str, Any]:
        if not self:
            return {}
        d = asdict(self)
        if not self.fusion_methods and not self.calibration:  # a single detector's overrides read as before
            d.pop("fusion_methods")
            d.pop("calibration")
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ThresholdOverrides:
        return cls(
            d.get("box_threshold"),
            dict(d.get("class_thresholds") or {}),
            str(d.get("source", "")),
            tuple(d.get("prompts_off") or ()),
            {str(k): str(v) for k, v in (d.get("notes") or {}).items()},
            {str(k): str(v) for k, v in (d.get("fusion_methods") or {}).items()},
            tuple((float(a), float(b)) for a, b in d.get("calibration") or ()),
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
