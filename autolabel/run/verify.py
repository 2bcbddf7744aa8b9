"""The verification pass: after the detectors, each image's doubtful candidates (`verification.doubtful`)
not answered yet are cropped and asked the verifier's question; the answers (P(yes)) are written into the
image's stored candidates, one transaction per image. A rerun asks only what is still unanswered (a wider
band, an image labeled since); another verifier model or question (`RunPlan.verifier_identity`) clears the
stored answers first. Decisions read them at export (`decisions.decide_kept`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.backends.base import Verifier
from autolabel.config.plan import RunPlan
from autolabel.images import load_image
from autolabel.run.store import RunStore, store_path
from autolabel.types import CandidateResult, ImageInfo
from autolabel.verification import unanswered

IDENTITY_KEY = "verifier"


@dataclass
class VerifyCounts:
    """What a verification pass did: crops asked (and on how many images), their seconds, and whether
    answers of another verifier were cleared first."""

    asked: int = 0
    images: int = 0
    seconds: float = 0.0
    forward_passes: int = 0
    cleared: int = 0  # images whose answers came from another verifier model or question

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def question(template: str, class_name: str, prompt: str) -> str:
    article = "an" if class_name[:1].lower() in "aeiou" else "a"
    return template.format(**{"class": class_name, "prompt": prompt, "a": article})


def verify_run(
    output_dir: Path,
    plan: RunPlan,
    images: list[ImageInfo],
    load: Callable[[], Verifier],
    max_pixels: int | None = None,
) -> VerifyCounts:
    """Ask the verifier about every unanswered doubtful candidate of the run's `images`; the verifier is
    loaded (`load`) only when there is something to ask."""
    v, s = plan.ontology.verifier, plan.decisions.verifier
    assert v is not None and s is not None
    counts = VerifyCounts()
    n_pos = len(plan.ontology.prompts)
    store = RunStore(store_path(output_dir))
    try:
        if store.get_value(IDENTITY_KEY) != plan.verifier_identity():
            counts.cleared = _clear(store)
            store.set_value(IDENTITY_KEY, plan.verifier_identity())
        wanted = {im.relpath for im in images}
        todo = [
            r.relpath
            for r in store.iter_candidates()
            if r.relpath in wanted and unanswered(r.candidates, n_pos, s).any()
        ]
        if not todo:
            return counts
        verifier = load()
        paths, signatures = {im.relpath: im.path for im in images}, store.done_signatures()
        t = time.perf_counter()
        for relpath in todo:
            result = next(iter(store.iter_candidates([relpath])))
            counts.asked += _answer(result, load_image(paths[relpath], max_pixels), verifier, plan, v.batch_size)
            counts.images += 1
            with store.transaction():
                store.put_result(result, signatures.get(relpath))
        counts.seconds = time.perf_counter() - t
        counts.forward_passes = verifier.stats.passes
    finally:
        store.close()
    return counts


def _answer(result: CandidateResult, image: np.ndarray, verifier: Verifier, plan: RunPlan, batch: int) -> int:
    """Fill `result`'s answers for its unanswered doubtful candidates; returns how many were asked."""
    c, ont, v, s = result.candidates, plan.ontology, plan.ontology.verifier, plan.decisions.verifier
    assert v is not None and s is not None
    ask = np.flatnonzero(unanswered(c, len(ont.prompts), s))
    if c.verified is None:
        c.verified = np.full(len(c), np.nan)
    for k in range(0, len(ask), batch):
        rows = ask[k : k + batch]
        prompts = [int(c.prompt_index[i]) for i in rows]
        texts = [question(v.question, ont.classes[ont.prompt_class[p]], ont.prompts[p]) for p in prompts]
        answers = np.asarray(verifier.verify(image, c.xyxy[rows], texts), dtype=np.float64)
        c.verified[rows] = np.clip(answers, 0.0, 1.0)
    return len(ask)


def _clear(store: RunStore) -> int:
    """Forget every stored answer (they came from another verifier); returns how many images had some."""
    signatures = store.done_signatures()
    had = [r.relpath for r in store.iter_candidates() if r.candidates.verified is not None]
    for relpath in had:
        r = next(iter(store.iter_candidates([relpath])))
        r.candidates.verified = None
        with store.transaction():
            store.put_result(r, signatures.get(r.relpath))
    return len(had)
