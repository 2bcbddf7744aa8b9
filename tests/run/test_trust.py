"""Trust: a run never mixes pictures, never loses a finished run, and explains every failure."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autolabel.api import default_output, label_folder
from autolabel.errors import AutolabelError, RunStoreError, UsageError
from autolabel.export import ExportOptions, YoloOptions, export_run
from autolabel.export.fiftyone import default_dataset_name
from autolabel.export.yolo import _closest_pair, merge_multi_segment
from autolabel.run.settings import RunSettings
from autolabel.run.store import RunStore, store_path
from tests.fakes import FakeDetector, FakeSegmenter
from tests.helpers import cli, scene, write_images


def label(ont: Path, data: Path, out: Path, formats: tuple[str, ...] = ("coco",), **kw: object):
    return label_folder(
        ont, data, out, list(formats), RunSettings(batch_size=2, **kw), backends=(FakeDetector(), FakeSegmenter())
    )[0]


def test_a_run_belongs_to_one_input_folder(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "a" / "images", ["x.png", "y.png"])
    write_images(tmp_path / "b" / "images", ["y.png", "x.png"])  # same names, other pictures
    out = tmp_path / "runs" / "images"
    label(fake_ontology_yaml, tmp_path / "a" / "images", out)
    with pytest.raises(RunStoreError, match="another input folder") as e:
        label(fake_ontology_yaml, tmp_path / "b" / "images", out)
    assert str(tmp_path / "a" / "images") in e.value.message and str(tmp_path / "b" / "images") in e.value.message
    assert "--output" in (e.value.hint or "") and "--overwrite" in (e.value.hint or "")
    # default run directories and dataset names differ for same-named folders
    assert default_output(tmp_path / "a" / "images") != default_output(tmp_path / "b" / "images")
    assert default_output(tmp_path / "a" / "images").name.startswith("images-")
    assert default_dataset_name(tmp_path / "r1" / "run") != default_dataset_name(tmp_path / "r2" / "run")


def test_a_changed_file_under_the_same_name_is_relabeled(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["x.png", "y.png", "z.png"])
    out = tmp_path / "out"
    label(fake_ontology_yaml, tmp_path / "in", out)
    before = json.loads((out / "coco" / "annotations.json").read_text())
    img = scene(200, 100, seed=7)  # another picture, another size, same name
    img.save(tmp_path / "in" / "y.png")
    os.utime(tmp_path / "in" / "y.png", ns=(10**18, 10**18))
    s = label(fake_ontology_yaml, tmp_path / "in", out)
    assert s.changed == 1 and s.processed == 1 and s.already_done == 2
    after = json.loads((out / "coco" / "annotations.json").read_text())
    y = next(i for i in after["images"] if i["file_name"] == "y.png")
    assert (y["width"], y["height"]) == (200, 100)
    assert next(i for i in before["images"] if i["file_name"] == "y.png")["width"] == 160
    (tmp_path / "in" / "z.png").unlink()  # a deleted image leaves the run
    label(fake_ontology_yaml, tmp_path / "in", out)
    assert [i["file_name"] for i in json.loads((out / "coco" / "annotations.json").read_text())["images"]] == [
        "x.png",
        "y.png",
    ]


def test_overwrite_never_destroys_a_finished_run_when_the_new_one_cannot_start(
    fake_ontology_yaml: Path, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", ["x.png", "y.png"])
    out = tmp_path / "out"
    label(fake_ontology_yaml, tmp_path / "in", out, formats=("coco", "yolo"))
    other = tmp_path / "other.yaml"
    other.write_text(fake_ontology_yaml.read_text().replace("tests.fakes:FakeDetector", "tests.fakes:Missing"))
    r = cli("label", str(other), str(tmp_path / "in"), "-o", str(out), "--overwrite", "-f", "coco")
    assert r.returncode == 2 and "has no class 'Missing'" in r.stderr
    broken = tmp_path / "broken.yaml"  # valid ontology, other prompts, but the model cannot load
    broken.write_text("ontology:\n  cat: cat\ndetector: {model: /nonexistent/model}\n")
    r = cli("label", str(broken), str(tmp_path / "in"), "-o", str(out), "--overwrite", "-f", "coco")
    assert r.returncode == 2 and "does not exist" in r.stderr
    store = RunStore(store_path(out))
    assert store.count_done() == 2  # every stored result is still there
    store.close()
    assert (out / "yolo" / "data.yaml").exists()
    # an overwrite that does run replaces the old exports: no yolo/ of the old classes beside the new coco
    changed = tmp_path / "changed.yaml"
    changed.write_text(fake_ontology_yaml.read_text().replace("crimson block", "scarlet block"))
    label(changed, tmp_path / "in", out, overwrite=True)
    assert not (out / "yolo").exists() and (out / "coco" / "annotations.json").exists()


def _yolo_loads_every_label(yolo: Path) -> dict[str, int]:
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(yolo / "data.yaml"))
    found = {}
    for split in ("train", "val"):
        ds = YOLODataset(img_path=data[split], data=data, task="segment", imgsz=160, augment=False)
        for lab in ds.labels:
            found[lab["im_file"]] = len(lab["cls"])
    return found


@pytest.mark.parametrize(
    "tree",
    [
        ["images/a.png", "images/b.png", "images/c.png"],
        ["data/images/a.png", "data/images/sub/images/b.png", "data/images_/a.png", "c.png"],
    ],
)
def test_yolo_export_of_trees_with_an_images_folder(fake_ontology_yaml: Path, tmp_path: Path, tree: list[str]) -> None:
    write_images(tmp_path / "in", tree)
    out = tmp_path / "out"
    label(fake_ontology_yaml, tmp_path / "in", out, formats=("yolo",))
    found = _yolo_loads_every_label(out / "yolo")
    assert len(found) == len(tree)
    assert all(n == 2 for n in found.values()), found  # every image: its red square and blue ring


def test_an_interrupted_export_leaves_the_previous_complete_one(
    fake_ontology_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_images(tmp_path / "in", [f"im{i}.png" for i in range(6)])
    out = tmp_path / "out"
    label(fake_ontology_yaml, tmp_path / "in", out, formats=("yolo",))
    before = sorted(p.relative_to(out).as_posix() for p in (out / "yolo").rglob("*"))
    from autolabel.export import yolo_writer as yolo_mod

    calls = {"n": 0}
    real = yolo_mod.place_media

    def interrupt_midway(*a: object) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        real(*a)  # type: ignore[arg-type]

    monkeypatch.setattr(yolo_mod, "place_media", interrupt_midway)
    with pytest.raises(KeyboardInterrupt):
        export_run(out, ["yolo"], ExportOptions(yolo=YoloOptions(split=(0.5, 0.3, 0.2), seed=3)))
    after = sorted(p.relative_to(out).as_posix() for p in (out / "yolo").rglob("*"))
    assert after == before  # the previous split, whole
    assert not list(out.glob(".yolo.*"))  # the half-built staging folder is gone at once
    monkeypatch.setattr(yolo_mod, "place_media", real)
    export_run(out, ["yolo"], ExportOptions(yolo=YoloOptions(split=(0.5, 0.3, 0.2), seed=3)))
    assert not list(out.glob(".yolo.*"))  # no staging leftovers
    assert "test: images/test" in (out / "yolo" / "data.yaml").read_text()


def test_a_systematic_model_failure_stops_the_run_and_keeps_finished_images(
    fake_ontology_yaml: Path, tmp_path: Path
) -> None:
    class BreaksAfterTwo(FakeDetector):
        def detect(self, images, prompts, min_score):  # type: ignore[no-untyped-def]
            if len(self.calls) >= 1:
                self.calls.append(len(images))
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return super().detect(images, prompts, min_score)

    write_images(tmp_path / "in", [f"im{i:02d}.png" for i in range(20)])
    det = BreaksAfterTwo()
    with pytest.raises(
        AutolabelError, match="3 batches in a row with the same error: model error: RuntimeError: CUDA error"
    ) as e:
        label_folder(
            fake_ontology_yaml,
            tmp_path / "in",
            tmp_path / "out",
            ["coco"],
            RunSettings(batch_size=2),
            backends=(det, FakeSegmenter()),
        )
    assert e.value.exit_code == 1 and "resumes" in (e.value.hint or "")
    store = RunStore(store_path(tmp_path / "out"))
    assert store.count_done() == 2 and len(store.skipped()) == 6  # stopped after 3 failing batches, not 9
    store.close()


def test_closest_pair_is_exact_and_bridging_large_outlines_is_bounded() -> None:
    import tracemalloc

    rng = np.random.default_rng(0)
    for _ in range(20):
        p, q = rng.uniform(0, 100, (rng.integers(1, 50), 2)), rng.uniform(0, 100, (rng.integers(1, 50), 2))
        d = ((p[:, None] - q[None]) ** 2).sum(-1)
        assert d[_closest_pair(p, q)] == d.min()
    t = np.linspace(0, 2 * np.pi, 7500, endpoint=False)
    a = np.stack([1000 + 900 * np.cos(t), 1500 + 900 * np.sin(t)], 1)
    b = a + [2000, 0]  # noqa: RUF005 - NumPy arithmetic, not concatenation
    tracemalloc.start()
    merged = merge_multi_segment([a, b])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(merged) >= 15000 and peak < 150e6  # was a 56M-element distance matrix (~450 MB, 1.2 GB total)


def test_single_image_file_limit_version_and_module_entry(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "in", [f"im{i}.png" for i in range(5)])
    r = cli(
        "label",
        str(fake_ontology_yaml),
        str(tmp_path / "in" / "im3.png"),
        "-o",
        str(tmp_path / "one"),
        "-f",
        "coco",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    assert [
        i["file_name"] for i in json.loads((tmp_path / "one" / "coco" / "annotations.json").read_text())["images"]
    ] == ["im3.png"]
    r = cli(
        "label",
        str(fake_ontology_yaml),
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "lim"),
        "-f",
        "coco",
        "-q",
        "--limit",
        "2",
    )
    assert r.returncode == 0, r.stderr
    assert len(json.loads((tmp_path / "lim" / "coco" / "annotations.json").read_text())["images"]) == 2
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("autolabel ")
    import subprocess
    import sys

    from tests.helpers import REPO

    r2 = subprocess.run([sys.executable, "-m", "autolabel", "--help"], capture_output=True, text=True, cwd=REPO)
    assert r2.returncode == 0 and "label" in r2.stdout


def test_help_shows_defaults() -> None:
    text = " ".join(cli("label", "--help").stdout.split())  # wrapped to the terminal width
    assert "[default: 4]" in text and "[default: coco,yolo,fiftyone]" in text and "[default: symlink]" in text
    assert "[default: 0.8,0.2]" in " ".join(cli("export", "--help").stdout.split())


def test_unexpected_errors_are_one_line_and_all_missing_models_at_once(
    fake_ontology_yaml: Path, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", ["x.png"])
    plug = tmp_path / "plug"
    plug.mkdir()
    (plug / "boom.py").write_text(
        "class Boom:\n    kind = 'detector'\n    @classmethod\n    def from_config(cls, cfg, device, dtype):\n"
        "        raise ZeroDivisionError('division by zero in the plugin')\n"
    )
    ont = tmp_path / "boom.yaml"
    ont.write_text("ontology:\n  cat: cat\ndetector: {backend: 'boom:Boom'}\nsegmenter: none\n")
    r = cli("label", str(ont), str(tmp_path / "in"), "-o", str(tmp_path / "o"), "-f", "coco", cwd=plug)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: unexpected ZeroDivisionError: division by zero in the plugin")
    both = tmp_path / "both.yaml"
    both.write_text("ontology:\n  cat: cat\ndetector: {model: /no/such/detector}\nsegmenter: {model: /no/such/seg}\n")
    r = cli("label", str(both), str(tmp_path / "in"), "-o", str(tmp_path / "o2"), "-f", "coco")
    assert r.returncode == 2 and "/no/such/detector" in r.stderr and "/no/such/seg" in r.stderr


def test_plugins_declare_their_kind_and_import_from_the_current_directory(tmp_path: Path) -> None:
    plug = tmp_path / "plug"
    plug.mkdir()
    shutil.copy(Path(__file__).parents[1] / "gt_backend.py", plug / "my_engine.py")
    ont = plug / "ont.yaml"
    ont.write_text("ontology:\n  person: person\ndetector: {backend: 'my_engine:GroundTruthEngine'}\n")
    r = cli("validate", str(ont), cwd=plug)
    assert r.returncode == 0, r.stderr
    wrong = plug / "wrong.yaml"
    wrong.write_text("ontology:\n  person: person\nsegmenter: {backend: 'my_engine:GroundTruthEngine'}\n")
    r = cli("validate", str(wrong), cwd=plug)
    assert r.returncode == 2 and "segmenter.backend: plugin 'my_engine:GroundTruthEngine' is a engine" in r.stderr
    # an engine plugin runs offline: no default segmenter model is looked up
    from autolabel.config.load import parse_ontology
    from autolabel.config.plan import make_plan
    from autolabel.inference.models import preflight_models

    plan = make_plan(
        parse_ontology(
            {"ontology": {"person": "person"}, "detector": {"backend": "tests.gt_backend:GroundTruthEngine"}}
        )
    )
    assert plan.engine and plan.segmenter_model is None
    preflight_models(plan)


def test_hub_revision_in_identity_and_proxy_aware_probe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from autolabel.backends import hub

    snap = tmp_path / "models--org--m" / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    monkeypatch.setattr(hub, "_cached_snapshot", lambda ref: str(snap))
    assert hub.model_identity("org/m") == "org/m@0123abcd"
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert hub._probe_address() == ("proxy.internal", 3128)


def test_validate_rejects_removed_text_threshold_and_empty_input(tmp_path: Path) -> None:
    ont = tmp_path / "o.yaml"
    ont.write_text("ontology:\n  cat: cat\ndetector: {text_threshold: 0.25}\n")
    r = cli("validate", str(ont))
    assert r.returncode == 2 and "detector.text_threshold: removed" in r.stderr
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images or videos found"):
        label_folder(
            {"ontology": {"cat": "cat"}},
            tmp_path / "empty",
            tmp_path / "o",
            ["coco"],
            backends=(FakeDetector(), FakeSegmenter()),
        )
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
