"""The run plan: an ontology resolved once into inference settings (fingerprinted: they change the
stored candidates) and decision settings (not fingerprinted: applied when exporting).

Changing a box threshold, NMS, clean-up, max detections or polygon tolerance therefore loads no model;
changing a model, a prompt, the candidate threshold or a segmenter setting needs a new run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from autolabel.backends import default_model, get_spec, resolved_options
from autolabel.config.ontology import DetectorConfig, Ontology
from autolabel.decisions import DecisionSettings
from autolabel.fusion import FusionSettings
from autolabel.types import CANDIDATES_FORMAT
from autolabel.verification import VerifierSettings


@dataclass(frozen=True)
class RunPlan:
    ontology: Ontology
    detector_model: str | None
    segmenter_model: str | None
    engine: bool  # the detector makes masks itself (SAM 3): no separate segmenter (an ensemble: every one)
    decisions: DecisionSettings
    source_models: tuple[str | None, ...] = ()  # an ensemble: each detector's model (the first is detector_model)

    @property
    def video_model(self) -> str | None:
        """tracker sam3: SAM 3's video model (`video.model`, else the detector's)."""
        return self.ontology.video.model or self.detector_model

    @property
    def verifier_model(self) -> str | None:
        """The verifier's model reference (its backend's default hub id unless the ontology names one)."""
        v = self.ontology.verifier
        if v is None:
            return None
        return v.model or get_spec(v.backend, "verifier").default_model

    def verifier_identity(self) -> str:
        """What makes the verifier's stored answers: its backend, model, question and options (not the
        band: a wider band asks more candidates, it does not change an answer)."""
        v = self.ontology.verifier
        if v is None:
            return ""
        what = {"backend": v.backend, "model": self.verifier_model, "question": v.question, "options": v.options}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def sources(self) -> tuple[DetectorConfig, ...]:
        """The detectors that run: an ensemble's list, or the one detector."""
        return self.ontology.sources or (self.ontology.detector,)

    @property
    def segments(self) -> bool:
        return self.ontology.segmenter.backend != "none"

    @property
    def tracker(self) -> str:
        """How the frames of videos are linked: `sam2` (asked, or `auto` with a SAM 2 segmenter) or `detect`."""
        t = self.ontology.video.tracker
        if t == "auto":
            return "sam2" if self.ontology.segmenter.backend == "sam2" and not self.engine else "detect"
        return t

    def clip_settings(self) -> str:
        """A digest of what makes a clip's stored frames: its sampling and, with `sam2`, the tracking (its
        settings and the keyframe decisions that start objects). Part of each clip's signature, not of the
        run's fingerprint: changing it relabels the videos, never the images."""
        v = self.ontology.video
        what: dict[str, Any] = {"sampling": v.sampling_json(), "tracker": self.tracker}
        if self.tracker == "sam3":
            what.update(max_objects=v.max_objects, scene_cut=v.scene_cut, model=self.video_model)
        if self.tracker == "sam2":
            keyframes = {k: val for k, val in self.decisions.to_json().items() if "track" not in k}
            what.update(
                detect_every=v.detect_every, max_objects=v.max_objects, scene_cut=v.scene_cut, keyframes=keyframes
            )
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def make_plan(ontology: Ontology) -> RunPlan:
    """Resolve backends and default model ids once."""
    specs = [get_spec(d.backend, "detector") for d in ontology.sources or (ontology.detector,)]
    models = tuple(d.model or sp.default_model for d, sp in zip(ontology.sources or (ontology.detector,), specs))
    seg_backend = ontology.segmenter.backend
    engine = all(sp.kind == "engine" for sp in specs)
    seg_model = None
    if seg_backend != "none" and not engine:
        seg_model = ontology.segmenter.model or default_model(seg_backend, "segmenter")
    if not ontology.ensemble:
        return RunPlan(ontology, models[0], seg_model, engine, decision_settings(ontology))
    return RunPlan(ontology, models[0], seg_model, engine, decision_settings(ontology), models)


def decision_settings(ontology: Ontology) -> DecisionSettings:
    """The decision settings an ontology asks for."""
    post, det, v = ontology.postprocess, ontology.detector, ontology.verifier
    return DecisionSettings(
        classes=tuple(ontology.classes),
        prompt_class=tuple(ontology.prompt_class),
        prompts=tuple(ontology.all_prompts),
        class_thresholds=tuple(ontology.box_threshold_of_class(c) for c in range(len(ontology.classes))),
        negative_threshold=det.box_threshold,
        nms_iou=post.nms_iou,
        cross_class_iou=post.cross_class_iou,
        negative_iou=post.negative_iou,
        min_box_area=post.min_box_area,
        max_box_fraction=post.max_box_fraction,
        max_detections=post.max_detections,
        cleanup=ontology.masks.cleanup,
        polygon_tolerance=ontology.masks.polygon_tolerance,
        track_iou=ontology.video.track_iou,
        track_low=ontology.video.track_low,
        track_max_missed=ontology.video.track_max_missed,
        scene_cut=ontology.video.scene_cut,
        fusion=fusion_settings(ontology),
        verifier=None if v is None else VerifierSettings(v.low, v.high, v.min_yes),
        min_presence=det.min_presence,
    )


def fusion_settings(ontology: Ontology) -> FusionSettings | None:
    """An ensemble's fusion decisions (None for a single detector)."""
    if not ontology.ensemble:
        return None
    f = ontology.fusion
    names = tuple(f"{d.backend}:{d.model}" if d.model else d.backend for d in ontology.sources)
    return FusionSettings(names, f.iou, f.score, f.mask, f.weights, (), (), f.source_thresholds)


def inference_settings(plan: RunPlan, identities: bool = True) -> dict[str, Any]:
    """Everything that changes the stored candidates, as flat `key: value` (fingerprinted).
    `identities=False` skips the model identity look-up (no file hashing, no network)."""
    from autolabel.backends.hub import model_identity

    ont, det, seg = plan.ontology, plan.ontology.detector, plan.ontology.segmenter
    out: dict[str, Any] = {
        "result_format": CANDIDATES_FORMAT,
        "ontology.prompts": list(ont.prompts),
        "ontology.classes": [ont.classes[c] for c in ont.prompt_class],
        "negatives": list(ont.negatives),
        "detector.backend": det.backend,
        "detector.model": plan.detector_model,
        "detector.candidate_floor": ont.candidate_floor(),
        "detector.max_candidates": det.max_candidates,
        "detector.options": resolved_options(det.backend, "detector", det.options),
        "detector.tiling": asdict(det.tiling) if det.tiling else None,
        "segmenter.backend": seg.backend if not plan.engine else ("none" if seg.backend == "none" else "engine"),
        "segmenter.model": plan.segmenter_model,
        "segmenter.multimask": seg.multimask if plan.segmenter_model else None,
        "segmenter.mask_threshold": seg.mask_threshold if plan.segmenter_model else None,
        "segmenter.options": resolved_options(seg.backend, "segmenter", seg.options) if plan.segmenter_model else None,
    }
    if identities:
        out["detector.model_identity"] = model_identity(plan.detector_model) if plan.detector_model else None
        out["segmenter.model_identity"] = model_identity(plan.segmenter_model) if plan.segmenter_model else None
    if ont.examples:
        out["examples"] = [
            {"prompt": e.prompt, "boxes": [list(b) for b in e.boxes], "text": e.text} for e in ont.examples
        ]
    if ont.ensemble:
        out["ensemble"] = [_source_settings(d, m, identities) for d, m in zip(ont.sources, plan.source_models)]
    return out


def _source_settings(det: DetectorConfig, model: str | None, identities: bool) -> dict[str, Any]:
    """What one detector of an ensemble contributes to the stored candidates."""
    from autolabel.backends.hub import model_identity

    out = {
        "backend": det.backend,
        "model": model,
        "candidate_threshold": det.candidate_threshold,
        "max_candidates": det.max_candidates,
        "options": resolved_options(det.backend, "detector", det.options),
        "tiling": asdict(det.tiling) if det.tiling else None,
    }
    if identities:
        out["model_identity"] = model_identity(model) if model else None
    return out


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _short(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= 80 else text[:77] + "..."


def diff_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`key: old → new` for every setting that differs (what makes a run incompatible); lists (prompts,
    classes, negatives) as what was added and removed: `ontology.prompts: + kitten, − cat`."""
    lines = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, "(not set)"), new.get(k, "(not set)")
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list) and all(isinstance(x, str) for x in a + b):
            added, removed = [x for x in b if x not in a], [x for x in a if x not in b]
            change = ", ".join([f"+ {x}" for x in added] + [f"− {x}" for x in removed]) or "reordered"
            lines.append(f"{k}: {_short(change)}")
        else:
            lines.append(f"{k}: {_short(a)} → {_short(b)}")
    return lines
