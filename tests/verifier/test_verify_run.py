"""The verifier's pass: only the doubtful band is asked, answers are stored and resumed, and with an
oracle of known error rate precision rises while recall holds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autolabel.api import label_folder
from autolabel.quality.evaluate import evaluate_run
from autolabel.run.run import Run

COCO = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco-sample" / "tiny_coco_train2017"
GT = COCO / "instances_train2017_small.json"
pytestmark = pytest.mark.skipif(not COCO.exists(), reason="needs ../shared/data/coco-sample")

NOISY = {"backend": "tests.gt_backend:NoisyGroundTruthEngine", "candidate_threshold": 0.05, "box_threshold": 0.3}
CLASSES = {"person": "person", "car": "car", "chair": "chair", "bowl": "bowl"}
ORACLE = {"backend": "tests.gt_backend:OracleVerifier", "low": 0.3, "high": 0.7}


@pytest.fixture
def oracle_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOLABEL_GT_JSON", str(GT))
    monkeypatch.setenv("AUTOLABEL_GT_IMAGES", str(COCO / "images"))
    log = tmp_path / "asked.log"
    monkeypatch.setenv("AUTOLABEL_ORACLE_LOG", str(log))
    return log


def _micro(run_dir: Path) -> dict:
    return evaluate_run(run_dir, GT).overall["micro"]


def _asked(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_oracle_verifier_raises_precision_at_equal_recall_and_resumes(tmp_path: Path, oracle_env: Path) -> None:
    out = tmp_path / "run"
    label_folder({"ontology": CLASSES, "detector": NOISY}, COCO / "images", out, ["coco"])
    before = _micro(out)
    summary, _ = label_folder(
        {"ontology": CLASSES, "detector": NOISY, "verifier": ORACLE}, COCO / "images", out, ["coco"]
    )
    assert summary.processed == 0  # the candidates are kept: a verifier is not part of the run's fingerprint
    asked = _asked(oracle_env)
    assert summary.verifier["asked"] == len(asked) > 0
    with Run.open(out) as run:
        for r in run.candidates():
            c = r.candidates
            assert c.score is not None
            band = (c.score >= 0.3) & (c.score < 0.7) & (c.prompt_index < len(CLASSES))
            if not band.any():
                continue
            assert c.verified is not None
            assert np.isnan(c.verified[~band]).all() and not np.isnan(c.verified[band]).any()
    after = _micro(out)
    assert after["precision"] > before["precision"] + 0.05
    assert after["recall"] >= before["recall"] - 0.05  # the oracle errs on one in ten
    # a rerun asks nothing again; a wider band asks only the candidates it adds
    again, _ = label_folder({"ontology": CLASSES, "detector": NOISY, "verifier": ORACLE}, COCO / "images", out, [])
    assert again.verifier["asked"] == 0 and len(_asked(oracle_env)) == len(asked)
    wider = {**ORACLE, "low": 0.2}
    more, _ = label_folder({"ontology": CLASSES, "detector": NOISY, "verifier": wider}, COCO / "images", out, [])
    assert more.verifier["asked"] > 0 and len(_asked(oracle_env)) == len(asked) + more.verifier["asked"]
    assert not set(_asked(oracle_env)[len(asked) :]) & set(asked)
    # another question is another verifier: its answers are asked afresh
    other = {**wider, "question": "Is there {a} {class} in this picture? Answer yes or no."}
    fresh, _ = label_folder({"ontology": CLASSES, "detector": NOISY, "verifier": other}, COCO / "images", out, [])
    assert fresh.verifier["cleared"] > 0 and fresh.verifier["asked"] == len(asked) + more.verifier["asked"]
    data = json.loads((out / "summary.json").read_text())
    assert data["verifier"]["asked"] == fresh.verifier["asked"]


def test_verifier_section_is_checked() -> None:
    from autolabel.config.load import parse_ontology
    from autolabel.errors import UsageError

    with pytest.raises(UsageError) as e:
        parse_ontology(
            {
                "ontology": {"cat": "cat"},
                "verifier": {"backend": "vlmm", "low": 0.6, "high": 0.4, "question": "Is it a {kind}?", "min_yse": 1},
            }
        )
    msg = e.value.message
    assert "verifier.backend: unknown verifier backend 'vlmm'; did you mean 'vlm'?" in msg
    assert "low (0.6) must not be above high (0.4)" in msg
    assert "verifier.question: may use {class}, {prompt} and {a} only" in msg
    assert "verifier.min_yse: unknown key; did you mean 'min_yes'?" in msg
    ok = parse_ontology({"ontology": {"cat": "cat"}, "verifier": {"low": 0.1}})
    assert ok.verifier is not None and ok.verifier.high == 0.5 and ok.verifier.backend == "vlm"
