"""Backend registry. Importing this module imports no model library.

A backend name is one of the registered names below, or `package.module:ClassName` for a plugin
class with a `from_config(cfg, device, dtype)` classmethod implementing the Detector/Segmenter protocol,
a class attribute `kind` ("detector", "segmenter" or "engine") and optionally `OPTIONS` ({name: default}
or {name: (default, choices)}), which the ontology validates like its own keys. Plugin modules are
imported from the current directory too (as pytest and uvicorn do). Adding a backend: one new module
with its class, and one line in BACKENDS below.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

from autolabel.backends.base import Detector, Segmenter, Verifier, check_backend_object, option_values
from autolabel.errors import UsageError


@dataclass(frozen=True)
class BackendSpec:
    name: str
    kind: str  # "detector", "segmenter" or "engine" (text → masks in one model; used as the detector)
    target: str  # "module:Class"
    default_model: str | None
    summary: str


BACKENDS: dict[str, BackendSpec] = {
    s.name: s
    for s in [
        BackendSpec(
            "mm_grounding_dino",
            "detector",
            "autolabel.backends.grounding_dino:MMGroundingDinoDetector",
            "iSEE-Laboratory/llmdet_tiny",
            "MM-Grounding-DINO / LLMDet (transformers MMGroundingDino*): like grounding_dino, stronger",
        ),
        BackendSpec(
            "grounding_dino",
            "detector",
            "autolabel.backends.grounding_dino:GroundingDinoDetector",
            "IDEA-Research/grounding-dino-tiny",
            "Grounding DINO (transformers); all prompts in one caption per image, batched over images",
        ),
        BackendSpec(
            "owlv2",
            "detector",
            "autolabel.backends.owlv2:Owlv2Detector",
            "google/owlv2-base-patch16-ensemble",
            "OWLv2 (transformers Owlv2ForObjectDetection): all prompts as queries in one pass, a score each",
        ),
        BackendSpec(
            "florence2",
            "detector",
            "autolabel.backends.florence2:Florence2Detector",
            "florence-community/Florence-2-base",
            "Florence-2 (transformers); task ovd (one pass per prompt, exact mapping) or grounding; no scores",
        ),
        BackendSpec(
            "sam3",
            "engine",
            "autolabel.backends.sam3:Sam3Engine",
            "facebook/sam3",
            "SAM 3 (transformers Sam3Model): text → instance masks in one model; vision pass once per image",
        ),
        BackendSpec(
            "sam2",
            "segmenter",
            "autolabel.backends.sam2:Sam2Segmenter",
            "facebook/sam2.1-hiera-tiny",
            "SAM 2 / 2.1 (transformers Sam2Model); one embedding per image, all boxes in one call",
        ),
        BackendSpec(
            "sam",
            "segmenter",
            "autolabel.backends.sam:SamSegmenter",
            "facebook/sam-vit-base",
            "SAM v1 (transformers SamModel); one embedding per image, all boxes in one call",
        ),
        BackendSpec(
            "sam_hq",
            "segmenter",
            "autolabel.backends.sam_hq:SamHQSegmenter",
            "syscv-community/sam-hq-vit-base",
            "SAM-HQ (transformers SamHQModel): SAM with a high-quality output token; finer mask edges",
        ),
        BackendSpec("none", "segmenter", "", None, "no segmenter: a box-only dataset"),
        BackendSpec(
            "vlm",
            "verifier",
            "autolabel.backends.vlm:VlmVerifier",
            "HuggingFaceTB/SmolVLM-256M-Instruct",
            "a vision-language model (transformers AutoModelForImageTextToText) answering yes/no per crop",
        ),
    ]
}


def backend_names(kind: str) -> list[str]:
    kinds = ("detector", "engine") if kind == "detector" else (kind,)
    return [n for n, s in BACKENDS.items() if s.kind in kinds]


KINDS = ("detector", "segmenter", "engine", "verifier")


def plugin_kind(cls: Any) -> str:
    """A plugin's declared `kind`; older plugins without one are read from their methods."""
    kind = getattr(cls, "kind", None)
    if kind is None:
        if hasattr(cls, "segment"):
            return "segmenter"
        return "engine" if getattr(cls, "segments", False) else "detector"
    if kind not in KINDS:
        raise UsageError(f"plugin {cls.__module__}:{cls.__name__} declares kind {kind!r}; valid: {', '.join(KINDS)}")
    return str(kind)


def check_backend(name: str, role: str) -> str | None:
    """The problem with using backend `name` as the `role` ('detector' or 'segmenter'), or None."""
    try:
        get_spec(name, role)
    except UsageError as e:  # a plugin's problem carries how plugins are found
        return e.message + (f" — {e.hint}" if e.hint and ":" in name else "")
    return None


def get_spec(name: str, kind: str) -> BackendSpec:
    """Look up a backend by name for a role ('detector' or 'segmenter'); plugins as 'module:Class'."""
    roles = ("detector", "engine") if kind == "detector" else (kind,)
    if ":" in name:
        plugin_cls = _load_class(name)
        declared = plugin_kind(plugin_cls)
        if declared not in roles:
            raise UsageError(f"plugin '{name}' is a {declared}, not a {kind}")
        return BackendSpec(name, declared, name, None, "plugin")
    spec = BACKENDS.get(name)
    valid = backend_names(kind)
    if spec is None or name not in valid:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        mean = f"did you mean '{close[0]}'? " if close else ""
        raise UsageError(
            f"unknown {kind} backend '{name}'; {mean}valid: {', '.join(valid)}",
            hint="run `autolabel backends` to list them, or give a plugin as 'package.module:ClassName'",
        )
    return spec


def backend_class(name: str, kind: str) -> Any:
    """The class behind a backend (importing its module loads no model library), or None for 'none'."""
    spec = get_spec(name, kind)
    return _load_class(spec.target) if spec.target else None


def backend_options(name: str, kind: str) -> dict[str, Any]:
    """What a backend declares: {option: default} or {option: (default, choices)}."""
    cls = backend_class(name, kind)
    return dict(getattr(cls, "OPTIONS", {}) or {})


def resolved_options(name: str, kind: str, given: dict[str, Any]) -> dict[str, Any]:
    """The backend's option defaults with the given values on top."""
    return option_values(backend_options(name, kind), given)


def default_model(name: str, kind: str) -> str | None:
    return get_spec(name, kind).default_model


def _import_hint(module_name: str, e: ImportError) -> str:
    """How plugins are found, when the plugin's own module is missing; else which package to install."""
    missing = getattr(e, "name", None) or ""
    if missing and (module_name == missing or module_name.startswith(missing + ".")):
        return (
            f"a plugin 'module:Class' is found by importing its module: put {module_name.split('.')[0]}.py (or its "
            f"package folder) in the current directory ({os.getcwd()}), add its folder to PYTHONPATH, or "
            "pip install the package that holds it"
        )
    if module_name.startswith("autolabel."):
        return "install autolabel with its model extras: pip install 'autolabel[models]'"
    return f"the plugin needs '{missing or e}': install it in this environment (pip install …)"


def _load_class(target: str) -> Any:
    module_name, _, cls_name = target.partition(":")
    if not module_name or module_name.startswith(".") or "/" in module_name or not cls_name.isidentifier():
        raise UsageError(
            f"backend '{target}' is not 'package.module:ClassName'",
            hint="a plugin is named by its importable module (from the current directory or an installed "
            "package), not by a file path: e.g. my_backends.detector:MyDetector",
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # plugins next to the ontology, as `pytest` and `uvicorn app:app` find them
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(
            f"cannot import backend module '{module_name}': {e}", hint=_import_hint(module_name, e)
        ) from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise UsageError(f"backend module '{module_name}' has no class '{cls_name}'")
    if not isinstance(cls, type) or not callable(getattr(cls, "from_config", None)):
        raise UsageError(
            f"'{target}' is not a backend class",
            hint="a backend is a class with a from_config(cfg, device, dtype) classmethod and a `kind`; "
            "see autolabel/backends/base.py",
        )
    return cls


def load_backend(name: str, kind: str, cfg: Any, device: str, dtype: Any) -> Detector | Segmenter | Verifier | None:
    """Instantiate a detector, engine or segmenter from its config (None for segmenter 'none'); one
    missing a method its kind needs is a UsageError naming the method."""
    spec = get_spec(name, kind)
    if not spec.target:
        return None
    cls = _load_class(spec.target)
    if getattr(cls, "PRECISION", None) and not isinstance(dtype, str):
        from autolabel.backends.torch_utils import backend_dtype

        dtype = backend_dtype(cls, dtype)
    backend = cls.from_config(cfg, device=device, dtype=dtype)
    check_backend_object(backend, spec.kind, name)
    return backend
