"""Model loading for a run plan: preflight (every model reference resolves, before torch is imported),
the backends, tiling around the detector, and the prompt check. Used by every executor."""

from __future__ import annotations

from typing import Any, cast

from autolabel.backends.base import Detector, PromptChecker, Segmenter, Verifier
from autolabel.config.ontology import DetectorConfig
from autolabel.config.plan import RunPlan
from autolabel.errors import UsageError

Models = tuple[Detector, Segmenter | None]  # (detector or engine, segmenter; None for engines and box-only runs)


def check_prompts(detector: Detector, plan: RunPlan) -> None:
    """A prompt the text encoder cannot take is a usage error before the first image, not a model
    error on every image."""
    from autolabel.inference.ensemble import parts

    for part in parts(detector):
        if isinstance(part, PromptChecker):
            part.check_prompts(list(plan.ontology.all_prompts))


def preflight_models(plan: RunPlan) -> None:
    """Check every model reference resolves (local path, cached, or hub reachable) before importing torch
    and transformers (~10 s on a small CPU), so an offline user hears about every missing model at once."""
    from autolabel.backends.hub import looks_like_path, models_hint, resolve_model
    from autolabel.errors import ModelLoadError

    problems: list[ModelLoadError] = []
    missing: list[tuple[str, str, str]] = []
    refs = [(m, "detector") for m in plan.source_models or (plan.detector_model,)] + [
        (plan.segmenter_model, "segmenter"),
        (plan.verifier_model, "verifier"),
    ]
    for ref, role in refs:
        option = "verifier.model (ontology)" if role == "verifier" else f"--{role}-model"
        if ref:
            try:
                resolve_model(ref, role, option)
            except ModelLoadError as e:
                problems.append(e)
                if not looks_like_path(ref):
                    missing.append((role, ref, option))
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ModelLoadError(
            "\n  ".join(["models cannot be loaded:"] + [e.message for e in problems]),
            hint=models_hint(missing) if missing else problems[0].hint,
        )


def load_models(plan: RunPlan, device: str = "auto", precision: str = "auto") -> Models:
    """The plan's (detector, segmenter) on `device` at `precision` (segmenter None for engines and box-only runs)."""
    from autolabel.backends import load_backend
    from autolabel.backends.torch_utils import resolve_device, resolve_dtype

    preflight_models(plan)
    dev = resolve_device(device)
    dtype = resolve_dtype(precision, dev)
    ont = plan.ontology
    detector = _detector(plan, dev, dtype)
    segmenter = None
    if not plan.engine:
        segmenter = cast(
            "Segmenter | None", load_backend(ont.segmenter.backend, "segmenter", ont.segmenter, dev, dtype)
        )
    return detector, segmenter


def load_verifier(plan: RunPlan, device: str = "auto", precision: str = "auto") -> Verifier:
    """The plan's verifier (its ontology section must be set)."""
    from autolabel.backends import load_backend
    from autolabel.backends.torch_utils import resolve_device, resolve_dtype

    v = plan.ontology.verifier
    assert v is not None
    dev = resolve_device(device)
    return cast(Verifier, load_backend(v.backend, "verifier", v, dev, resolve_dtype(precision, dev)))


def load_detector(plan: RunPlan, device: str = "auto", precision: str = "auto") -> Detector:
    """The plan's detector alone, prompts checked (a Ray run's driver follows `tracker: sam2` clips itself)."""
    from autolabel.backends.torch_utils import resolve_device, resolve_dtype

    preflight_models(plan)
    dev = resolve_device(device)
    detector = _detector(plan, dev, resolve_dtype(precision, dev))
    check_prompts(detector, plan)
    return detector


def _detector(plan: RunPlan, device: str, dtype: Any) -> Detector:
    """The plan's detector, or an ensemble of its detectors (each loaded once, in the list's order)."""
    from autolabel.backends import load_backend
    from autolabel.inference.ensemble import Ensemble

    parts = [
        with_tiling(cast(Detector, load_backend(d.backend, "detector", d, device, dtype)), plan, d)
        for d in plan.sources
    ]
    if not plan.ontology.ensemble:
        return parts[0]
    return Ensemble(parts, [d.candidate_threshold for d in plan.sources])


def with_tiling(detector: Detector, plan: RunPlan, cfg: DetectorConfig | None = None) -> Detector:
    """The detector, run on tiles when its section (`cfg`, else the plan's detector) asks for `tiling`."""
    from autolabel.inference.ensemble import Ensemble
    from autolabel.inference.tiling import TiledDetector

    t = (cfg or plan.ontology.detector).tiling
    if t is None or isinstance(detector, (TiledDetector, Ensemble)):
        return detector
    if plan.engine or detector.kind == "engine":
        raise UsageError(
            "detector.tiling works with box detectors, not with engines that make masks (SAM 3)",
            hint="remove detector.tiling, or use a detector + segmenter pipeline",
        )
    return TiledDetector(detector, t.tile, t.overlap, t.whole_image, t.merge_ios)


def load_video_model(plan: RunPlan, device: str = "auto", precision: str = "auto") -> tuple[Any, str]:
    """`tracker: sam2`: ((Sam2VideoModel, Sam2VideoProcessor) of the plan's segmenter model, its device);
    `tracker: sam3`: (Sam3VideoModel, Sam3VideoProcessor) of `video.model` or the detector's."""
    from autolabel.backends.sam2_video import load_sam2_video, load_sam3_video
    from autolabel.backends.torch_utils import resolve_device, resolve_dtype

    if plan.tracker == "sam3":
        assert plan.video_model is not None
        dev = resolve_device(device)
        return load_sam3_video(plan.video_model, dev, resolve_dtype(precision, dev)), dev

    if plan.segmenter_model is None:
        raise UsageError("video.tracker: sam2 needs a SAM 2 segmenter model", hint="set segmenter.backend: sam2")
    dev = resolve_device(device)
    return load_sam2_video(plan.segmenter_model, dev, resolve_dtype(precision, dev)), dev
