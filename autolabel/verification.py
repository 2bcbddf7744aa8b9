"""The verifier's part in the decisions: which candidates are doubtful (a score in [low, high) for an
ontology prompt) and which of those its answer drops (P(yes) under `min_yes`). Pure NumPy; the model that
answers runs in `run/verify.py`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autolabel.types import Candidates


@dataclass(frozen=True)
class VerifierSettings:
    low: float = 0.2
    high: float = 0.5
    min_yes: float = 0.5


def doubtful(c: Candidates, n_pos: int, s: VerifierSettings) -> np.ndarray:
    """bool (N,): candidates of an ontology prompt scoring in [low, high) (none without scores)."""
    if c.score is None:
        return np.zeros(len(c), dtype=bool)
    return (c.prompt_index < n_pos) & (c.score >= s.low) & (c.score < s.high)


def unanswered(c: Candidates, n_pos: int, s: VerifierSettings) -> np.ndarray:
    """The doubtful candidates the verifier has not answered yet (what a verification pass asks)."""
    asked = np.zeros(len(c), dtype=bool) if c.verified is None else ~np.isnan(c.verified)
    return doubtful(c, n_pos, s) & ~asked


def rejected(c: Candidates, n_pos: int, s: VerifierSettings) -> np.ndarray:
    """The doubtful candidates the verifier answered no (P(yes) under `min_yes`)."""
    if c.verified is None:
        return np.zeros(len(c), dtype=bool)
    with np.errstate(invalid="ignore"):
        return doubtful(c, n_pos, s) & (np.nan_to_num(c.verified, nan=1.0) < s.min_yes)
