"""Validation of parsed ontology YAML: every problem is collected (file and key, did-you-mean) and
reported together; the result is the frozen `Ontology` of `ontology.py`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from autolabel.config import ensemble
from autolabel.config import examples as config_examples
from autolabel.config.ontology import (
    REMOVED_KEYS,
    TOP_KEYS,
    TRACKERS,
    DetectorConfig,
    MasksConfig,
    Ontology,
    PostprocessConfig,
    Range,
    SegmenterConfig,
    TilingConfig,
    VerifierConfig,
    VideoConfig,
    did_you_mean,
    field_range,
)
from autolabel.errors import shown
from autolabel.types import normalize_prompt

BOX_THRESHOLD = Range(0.0, 1.0)  # per-class thresholds: the range of detector.box_threshold (tested)


class Validator:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def err(self, key: str, msg: str) -> None:
        self.problems.append(f"{self.source}: {key}: {msg}" if key else f"{self.source}: {msg}")

    def ontology(self, data: Any) -> Ontology | None:
        if data is None:
            self.err("", "the file is empty; it needs an 'ontology:' mapping of prompt: class")
            return None
        if not isinstance(data, dict):
            self.err("", f"expected a mapping with an 'ontology:' key at the top, got {type(data).__name__}")
            return None
        for k in data:
            if k not in TOP_KEYS:
                self.err(str(k), "unknown key" + did_you_mean(str(k), TOP_KEYS))
        prompts, prompt_class, classes = self.mapping(data.get("ontology"))
        negatives = self.negatives(data.get("negatives"), prompts)
        thresholds = self.class_settings(data.get("classes"), classes)
        det, sources = ensemble.detectors(self, data.get("detector"))
        fusion = ensemble.fusion(
            self, data.get("fusion"), sources, ensemble.source_thresholds(data.get("detector"), sources)
        )
        seg = self.section(data.get("segmenter"), "segmenter", SegmenterConfig)
        post = self.section(data.get("postprocess"), "postprocess", PostprocessConfig)
        masks = self.section(data.get("masks"), "masks", MasksConfig)
        video = self.video(data.get("video"), seg, det.backend)
        verifier = self.verifier(data.get("verifier"))
        examples = config_examples.examples(self, data.get("examples"), prompts, sources or (det,))
        self.backends(sources or (det,), seg, verifier)
        if sources and video.tracker in ("sam2", "sam3"):
            self.err(
                "video.tracker", f"{video.tracker} follows one detector's objects; with an ensemble use tracker: detect"
            )
        if self.problems:
            return None
        return Ontology(
            tuple(prompts),
            tuple(prompt_class),
            tuple(classes),
            tuple(thresholds),
            tuple(negatives),
            det,
            seg,
            post,
            masks,
            video,
            self.source,
            sources,
            fusion,
            verifier,
            examples,
        )

    def video(self, m: Any, seg: SegmenterConfig, det_backend: str = "") -> VideoConfig:
        tracker = "auto"
        if isinstance(m, dict) and "tracker" in m:
            m = dict(m)
            tracker = m.pop("tracker")
            if tracker not in TRACKERS:
                self.err("video.tracker", f"must be one of {', '.join(TRACKERS)}, got {shown(tracker)}")
            elif tracker == "sam3" and det_backend != "sam3":
                self.err(
                    "video.tracker",
                    f"sam3 follows the prompts with SAM 3's video model; the detector is '{det_backend}': use "
                    "detector backend sam3, or tracker: detect",
                )
            elif tracker == "sam2" and seg.backend != "sam2":
                self.err(
                    "video.tracker",
                    f"sam2 follows objects with the SAM 2 segmenter's video model; the segmenter is "
                    f"'{seg.backend}': use segmenter backend sam2, or tracker: detect",
                )
        out: VideoConfig = self.section(m, "video", VideoConfig)
        if out.fps is not None and out.stride != 1:
            self.err("video", "give either stride or fps, not both")
        return replace(out, tracker=tracker if tracker in TRACKERS else "auto")

    def verifier(self, m: Any) -> VerifierConfig | None:
        if m is None:
            return None
        v: VerifierConfig = self.section(m, "verifier", VerifierConfig)
        if v.low > v.high:
            self.err("verifier", f"low ({v.low}) must not be above high ({v.high}): [low, high) is the doubtful band")
        try:
            v.question.format(**{"class": "x", "prompt": "x", "a": "a"})
        except (KeyError, IndexError, ValueError) as e:
            self.err("verifier.question", f"may use {{class}}, {{prompt}} and {{a}} only ({e})")
        return v

    def backends(self, dets: tuple[DetectorConfig, ...], seg: SegmenterConfig, v: VerifierConfig | None) -> None:
        """Unknown backend names (and plugins that do not import or have the wrong kind) are reported
        with the other problems, before any model is loaded."""
        from autolabel.backends import check_backend

        keys = ["detector.backend"] if len(dets) == 1 else [f"detector[{i}].backend" for i in range(len(dets))]
        for key, name, role in [
            *((k, d.backend, "detector") for k, d in zip(keys, dets)),
            ("segmenter.backend", seg.backend, "segmenter"),
            *([("verifier.backend", v.backend, "verifier")] if v is not None else []),
        ]:
            problem = check_backend(name, role)
            if problem:
                self.err(key, problem)

    def negatives(self, m: Any, prompts: list[str]) -> list[str]:
        if m is None:
            return []
        if not isinstance(m, list) or not all(isinstance(x, str) and x.strip() for x in m):
            self.err("negatives", "must be a list of prompts, e.g. [toy car, poster of a person]")
            return []
        out: list[str] = []
        seen = {normalize_prompt(p) for p in prompts}
        for x in m:
            if "." in x:
                self.err(f"negatives.{x}", "a prompt must not contain '.': Grounding DINO uses '.' to separate prompts")
            elif normalize_prompt(x) in seen:
                self.err(f"negatives.{x}", "is also a prompt of the ontology (or repeated)")
            else:
                seen.add(normalize_prompt(x))
                out.append(x.strip())
        return out

    def mapping(self, m: Any) -> tuple[list[str], list[int], list[str]]:
        prompts: list[str] = []
        prompt_class: list[int] = []
        classes: list[str] = []
        if m is None:
            self.err("ontology", "missing or empty; add e.g.\n    ontology:\n      pickup truck: truck")
            return prompts, prompt_class, classes
        if not isinstance(m, dict):
            self.err("ontology", f"must be a mapping of prompt: class, got {type(m).__name__}")
            return prompts, prompt_class, classes
        if not m:
            self.err("ontology", "is empty; add at least one 'prompt: class' line")
        seen: dict[str, tuple[str, str]] = {}
        class_id: dict[str, int] = {}  # a dict, not list.index: 160k prompts stay linear
        for prompt, cls in m.items():
            key = f"ontology.{prompt}"
            if not isinstance(prompt, str) or not prompt.strip():
                self.err(key, "a prompt must be non-empty text")
                continue
            if not isinstance(cls, str) or not cls.strip():
                self.err(key, f"the class name must be non-empty text, got {shown(cls)}")
                continue
            if "." in prompt:
                self.err(key, "a prompt must not contain '.': Grounding DINO uses '.' to separate prompts")
                continue
            norm = normalize_prompt(prompt)
            if norm in seen:
                other, other_cls = seen[norm]
                if other_cls != cls.strip():
                    self.err(key, f"prompt is mapped to two classes: '{other_cls}' (as '{other}') and '{cls.strip()}'")
                else:
                    self.err(key, f"prompt repeats '{other}' (prompts compare case-insensitively)")
                continue
            seen[norm] = (prompt, cls.strip())
            name = cls.strip()
            if name not in class_id:
                class_id[name] = len(classes)
                classes.append(name)
            prompts.append(prompt.strip())
            prompt_class.append(class_id[name])
        return prompts, prompt_class, classes

    def class_settings(self, m: Any, classes: list[str]) -> list[float | None]:
        out: list[float | None] = [None] * len(classes)
        if m is None:
            return out
        if not isinstance(m, dict):
            self.err("classes", f"must be a mapping of class: {{box_threshold: …}}, got {type(m).__name__}")
            return out
        class_id = {c: k for k, c in enumerate(classes)}
        for name, settings in m.items():
            key = f"classes.{name}"
            if name not in class_id:
                self.err(key, "no prompt maps to this class" + (did_you_mean(str(name), classes) if classes else ""))
                continue
            if not isinstance(settings, dict):
                self.err(key, f"must be a mapping such as {{box_threshold: 0.3}}, got {shown(settings)}")
                continue
            for k, val in settings.items():
                if k != "box_threshold":
                    self.err(f"{key}.{k}", "unknown key" + did_you_mean(str(k), ("box_threshold",)))
                    continue
                out[class_id[name]] = self.number(f"{key}.{k}", val, BOX_THRESHOLD)
        return out

    def section(self, m: Any, name: str, cls: Callable[..., Any]) -> Any:
        """A section mapping → `cls`; `name` is its key in messages (`detector[1]` in an ensemble)."""
        defaults = cls()
        if m is None:
            return defaults
        if name == "segmenter" and isinstance(m, str):  # `segmenter: none` shorthand
            m = {"backend": m}
        if not isinstance(m, dict):
            self.err(name, f"must be a mapping, got {type(m).__name__}")
            return defaults
        fields = {k: v for k, v in asdict(defaults).items() if k != "options"}
        role = name.split("[")[0]
        backend_options = self.backend_options(role, m.get("backend", getattr(defaults, "backend", None)))
        values: dict[str, Any] = {}
        options: dict[str, Any] = {}
        for k, val in m.items():
            key = f"{name}.{k}"
            if f"{role}.{k}" in REMOVED_KEYS:
                self.err(key, REMOVED_KEYS[f"{role}.{k}"])
            elif k == "tiling" and role == "detector":
                values[k] = self.tiling(val)
            elif k in fields:
                values[k] = self.value(key, k, val, fields[k], cls)
            elif k in backend_options:
                options[k] = self.option(key, val, backend_options[k])
            else:
                self.err(key, "unknown key" + did_you_mean(str(k), list(fields) + list(backend_options)))
        if "options" in asdict(defaults):
            values["options"] = {
                **{k: v[0] if isinstance(v, tuple) else v for k, v in backend_options.items()},
                **options,
            }
        return replace(defaults, **values)

    def backend_options(self, section: str, backend: Any) -> dict[str, Any]:
        """The options a backend declares ({name: default}); {} for unknown backends (reported elsewhere)."""
        if section not in ("detector", "segmenter", "verifier") or not isinstance(backend, str):
            return {}
        from autolabel.backends import backend_options

        try:
            return backend_options(backend.strip(), section)
        except Exception:
            return {}

    def option(self, key: str, val: Any, default: Any) -> Any:
        if isinstance(default, tuple):  # (default, choices)
            if val not in default[1]:
                self.err(key, f"must be one of {', '.join(map(str, default[1]))}, got {shown(val)}")
            return val
        if isinstance(default, bool):
            return val if isinstance(val, bool) else self.err(key, f"must be true or false, got {shown(val)}")
        if isinstance(default, (int, float)):
            return self.number(key, val, Range(0, None, integer=isinstance(default, int)))
        if not isinstance(val, str):
            self.err(key, f"must be text, got {shown(val)}")
        return val

    def tiling(self, m: Any) -> TilingConfig | None:
        if m is None or m is False:
            return None
        if not isinstance(m, dict):
            self.err("detector.tiling", "must be a mapping such as {tile: 640, overlap: 0.2}")
            return None
        d = TilingConfig()
        out: dict[str, Any] = {}
        for k, val in m.items():
            key = f"detector.tiling.{k}"
            rng = field_range(TilingConfig, k)
            if rng is not None:
                out[k] = self.number(key, val, rng)
            elif k == "whole_image" and isinstance(val, bool):
                out[k] = val
            elif k == "whole_image":
                self.err(key, f"must be true or false, got {shown(val)}")
            else:
                self.err(key, "unknown key" + did_you_mean(str(k), list(asdict(d))))
        return replace(d, **out)

    def value(self, key: str, k: str, val: Any, default: Any, cls: Any) -> Any:
        if k in ("backend", "model", "question"):
            if val is None and k != "backend":
                return None
            if not isinstance(val, str) or not val.strip():
                self.err(key, f"must be text, got {shown(val)}")
                return default
            return val.strip()
        if isinstance(default, bool):
            if not isinstance(val, bool):
                self.err(key, f"must be true or false, got {shown(val)}")
                return default
            return val
        rng = field_range(cls, k)
        if rng is None:  # a new setting must declare its range (`num`) or be text/boolean
            raise TypeError(f"{cls.__name__}.{k}: declare it with num(default, lo, hi)")
        return self.number(key, val, rng)

    def number(self, key: str, val: Any, rng: Range) -> Any:
        """`val` checked against `rng`: the right type, finite, within bounds (null where allowed)."""
        if val is None and rng.nullable:
            return None
        ok_types = (int,) if rng.integer else (int, float)
        if isinstance(val, bool) or not isinstance(val, ok_types):
            self.err(key, f"must be a{'n integer' if rng.integer else ' number'}, got {shown(val)}")
            return rng.lo if rng.lo is not None else 0
        if not math.isfinite(val):
            self.err(key, f"must be a finite number, got {val}")
            return rng.lo if rng.lo is not None else 0
        if (rng.lo is not None and val < rng.lo) or (rng.hi is not None and val > rng.hi):
            bounds = f"[{rng.lo}, {rng.hi}]" if rng.hi is not None else f">= {rng.lo}"
            self.err(key, f"must be in {bounds}, got {val}")
            return rng.lo
        return int(val) if rng.integer else float(val)
