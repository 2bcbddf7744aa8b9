from __future__ import annotations

from pathlib import Path

import pytest

from autolabel.config.load import load_ontology, parse_ontology
from autolabel.errors import OntologyError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ont.yaml"
    p.write_text(text)
    return p


def test_class_ids_follow_first_appearance_and_many_prompts_share_a_class(tmp_path: Path) -> None:
    ont = load_ontology(write(tmp_path, "ontology:\n  pickup truck: truck\n  car: car\n  lorry: truck\n"))
    assert ont.classes == ("truck", "car")
    assert ont.prompts == ("pickup truck", "car", "lorry")
    assert ont.prompt_class == (0, 1, 0)
    assert ont.detector.backend == "mm_grounding_dino" and ont.segmenter.backend == "sam2"


def test_per_class_threshold_overrides_detector_threshold() -> None:
    ont = parse_ontology(
        {
            "ontology": {"car": "car", "dog": "dog"},
            "detector": {"box_threshold": 0.4},
            "classes": {"dog": {"box_threshold": 0.2}},
        }
    )
    assert ont.box_threshold_of_class(0) == 0.4
    assert ont.box_threshold_of_class(1) == 0.2


def test_segmenter_none_shorthand() -> None:
    ont = parse_ontology({"ontology": {"car": "car"}, "segmenter": "none"})
    assert ont.segmenter.backend == "none"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("ontology: {}\n", "ontology: is empty"),
        ("ontology:\n", "ontology: missing or empty"),
        (
            "ontology:\n  car: car\ndetector:\n  box_treshold: 0.3\n",
            "detector.box_treshold: unknown key; did you mean 'box_threshold'?",
        ),
        ("ontolgy:\n  car: car\n", "ontolgy: unknown key; did you mean 'ontology'?"),
        ("ontology:\n  car: car\n  Car: vehicle\n", "prompt is mapped to two classes: 'car'"),
        ("ontology:\n  car: car\n  car: vehicle\n", "duplicate key 'car'"),
        (
            "ontology:\n  car: car\ndetector:\n  box_threshold: 1.5\n",
            "detector.box_threshold: must be in [0.0, 1.0], got 1.5",
        ),
        (
            "ontology:\n  car: car\ndetector:\n  box_threshold: high\n",
            "detector.box_threshold: must be a number, got 'high'",
        ),
        ("ontology:\n  car: car\nsegmenter:\n  multimask: 3\n", "segmenter.multimask: must be true or false"),
        ("ontology:\n  car: [a, b]\n", "the class name must be non-empty text"),
        ("ontology:\n  a car. a dog: car\n", "must not contain '.'"),
        ("ontology:\n  car: car\nclasses:\n  dog: {box_threshold: 0.2}\n", "classes.dog: no prompt maps to this class"),
        (
            "ontology:\n  car: car\nclasses:\n  car: {box_treshold: 0.2}\n",
            "classes.car.box_treshold: unknown key; did you mean 'box_threshold'?",
        ),
        ("- car\n- dog\n", "expected a mapping"),
        ("ontology:\n  car: car\n    bad: indent\n", "invalid YAML (line 3"),
        ("ontology:\n  car: car\nvideo:\n  strde: 2\n", "video.strde: unknown key; did you mean 'stride'?"),
        ("ontology:\n  car: car\nvideo:\n  stride: 2\n  fps: 5\n", "video: give either stride or fps"),
        ("ontology:\n  car: car\nvideo:\n  tracker: sort\n", "video.tracker: must be one of auto, detect, sam2"),
        ("ontology:\n  car: car\nsegmenter: none\nvideo:\n  tracker: sam2\n", "video.tracker: sam2 follows objects"),
        ("ontology:\n  car: car\nvideo:\n  max_frames: 0\n", "video.max_frames: must be in"),
    ],
)
def test_invalid_ontologies_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(OntologyError) as e:
        load_ontology(p)
    assert str(p) in e.value.message
    assert expected in e.value.message
    assert e.value.exit_code == 2


def test_all_problems_reported_together(tmp_path: Path) -> None:
    p = write(tmp_path, "ontology:\n  car: car\ndetector:\n  box_treshold: 0.3\n  text_threshold: 7\n")
    with pytest.raises(OntologyError) as e:
        load_ontology(p)
    assert "box_treshold" in e.value.message and "text_threshold" in e.value.message


def test_missing_file() -> None:
    with pytest.raises(OntologyError, match="ontology file not found"):
        load_ontology("/nonexistent/ont.yaml")


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parents[2] / "ontologies").glob("*.yaml")))
def test_shipped_ontologies_are_valid(name: str) -> None:
    ont = load_ontology(Path(__file__).parents[2] / "ontologies" / name)
    assert len(ont.classes) >= 2 and len(ont.prompts) >= len(ont.classes)


def test_fingerprint_material_is_plain_json() -> None:
    ont = parse_ontology({"ontology": {"car": "car"}})
    c = ont.canonical()
    assert c["prompts"] == ["car"] and c["detector"]["backend"] == "mm_grounding_dino"
    changed = ont.with_overrides(detector={"box_threshold": 0.5, "model": None})
    assert changed.detector.box_threshold == 0.5 and changed.canonical() != c


def _numeric_keys() -> list[tuple[str, str]]:
    """Every numeric ontology key, read from the schema itself (a new setting is covered by adding it)."""
    from dataclasses import fields

    from autolabel.config.ontology import DetectorConfig, MasksConfig, PostprocessConfig, SegmenterConfig, TilingConfig

    sections = {
        "detector": DetectorConfig,
        "segmenter": SegmenterConfig,
        "postprocess": PostprocessConfig,
        "masks": MasksConfig,
        "detector.tiling": TilingConfig,
    }
    return [(sec, f.name) for sec, cls in sections.items() for f in fields(cls) if "range" in f.metadata]


@pytest.mark.parametrize("section,key", _numeric_keys())
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_every_number_must_be_finite_and_in_its_declared_range(section: str, key: str, bad: float) -> None:
    from autolabel.config.load import parse_ontology

    value: dict = {key: bad}
    if section == "detector.tiling":
        value = {"tiling": value}
    data = {"ontology": {"cat": "cat"}, section.split(".")[0]: value}
    with pytest.raises(OntologyError, match=rf"{key}: must be (a finite number|an integer)"):
        parse_ontology(data)


def test_per_class_thresholds_use_the_box_threshold_range() -> None:
    from autolabel.config.load import parse_ontology

    for bad, why in ((float("nan"), "finite"), (1.5, r"in \[0.0, 1.0\]")):
        with pytest.raises(OntologyError, match=rf"classes.cat.box_threshold: must be (a {why}|{why})"):
            parse_ontology({"ontology": {"cat": "cat"}, "classes": {"cat": {"box_threshold": bad}}})


def test_per_class_threshold_range_is_the_detector_box_threshold_range() -> None:
    from autolabel.config.ontology import DetectorConfig, field_range
    from autolabel.config.validate import BOX_THRESHOLD

    assert field_range(DetectorConfig, "box_threshold") == BOX_THRESHOLD


def test_video_settings_sign_the_clips_not_the_run() -> None:
    """Sampling and sam2 tracking change a clip's frames: they are in each clip's signature (the clip is
    relabeled), never in the run's fingerprint (images are not); detect tracking is a decision."""
    from autolabel.config.load import parse_ontology
    from autolabel.config.plan import inference_settings, make_plan

    def plan(**video: object) -> object:
        return make_plan(parse_ontology({"ontology": {"car": "car"}, **({"video": video} if video else {})}))

    base = plan()
    assert base.tracker == "sam2"  # auto: the default SAM 2 segmenter follows the objects
    assert make_plan(parse_ontology({"ontology": {"car": "car"}, "segmenter": "none"})).tracker == "detect"
    settings = inference_settings(base, identities=False)
    assert not [k for k in settings if k.startswith("video")]
    assert inference_settings(plan(fps=2, tracker="detect"), identities=False) == settings
    assert plan(stride=1).clip_settings() == base.clip_settings()  # the default spelled out
    assert plan(stride=2).clip_settings() != base.clip_settings()
    assert plan(detect_every=3).clip_settings() != base.clip_settings()
    detect = plan(tracker="detect")
    assert plan(tracker="detect", track_iou=0.5, scene_cut=None).clip_settings() == detect.clip_settings()
    assert plan(tracker="detect", track_iou=0.5).decisions.track_iou == 0.5  # a decision
