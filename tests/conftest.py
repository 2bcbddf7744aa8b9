from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# FiftyOne's embedded MongoDB and ultralytics' settings live in a throwaway folder, never in ~
_SCRATCH = Path(tempfile.mkdtemp(prefix="autolabel-tests-"))
atexit.register(shutil.rmtree, _SCRATCH, True)  # last at exit, after the database below has stopped: ~300 MB each
os.environ.setdefault("FIFTYONE_DATABASE_DIR", str(_SCRATCH / "fiftyone-db"))
os.environ.setdefault("FIFTYONE_HOME", str(_SCRATCH / "fiftyone-home"))
os.environ.setdefault("YOLO_CONFIG_DIR", str(_SCRATCH / "ultralytics"))
os.environ.setdefault("YOLO_OFFLINE", "1")

from tests.helpers import REPO  # noqa: E402, F401 - where the repository is, for subprocess tests


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _own_fiftyone_database() -> None:
    """FiftyOne attaches to any FiftyOne database service already running on the machine (and then
    ignores FIFTYONE_DATABASE_DIR): the tests start their own MongoDB on a free loopback port and point
    FIFTYONE_DATABASE_URI at it, so they never see, nor touch, a user's datasets."""
    import importlib.util
    import socket
    import time

    if os.environ.get("FIFTYONE_DATABASE_URI"):
        return
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        return
    mongod = Path(next(iter(spec.submodule_search_locations))) / "db" / "bin" / "mongod"
    if not mongod.exists():
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dbpath = _SCRATCH / "mongodb"
    dbpath.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [str(mongod), "--dbpath", str(dbpath), "--port", str(port), "--bind_ip", "127.0.0.1", "--nounixsocket"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(_stop, proc)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    os.environ["FIFTYONE_DATABASE_URI"] = f"mongodb://127.0.0.1:{port}"
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")


_own_fiftyone_database()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random-weight Grounding DINO and SAM2 directories (built once per session)."""
    from tests.tiny_models import (
        build_tiny_florence2,
        build_tiny_gdino,
        build_tiny_owlv2,
        build_tiny_sam,
        build_tiny_sam2,
        build_tiny_sam3,
        build_tiny_sam_hq,
    )

    root = tmp_path_factory.mktemp("models")
    return {
        "gdino": build_tiny_gdino(root / "gdino"),
        "sam2": build_tiny_sam2(root / "sam2"),
        "sam": build_tiny_sam(root / "sam"),
        "florence2": build_tiny_florence2(root / "florence2"),
        "sam3": build_tiny_sam3(root / "sam3"),
        "mm_gdino": build_tiny_gdino(root / "mm_gdino", mm=True),
        "owlv2": build_tiny_owlv2(root / "owlv2"),
        "sam_hq": build_tiny_sam_hq(root / "sam_hq"),
    }


@pytest.fixture
def fake_ontology_yaml(tmp_path: Path) -> Path:
    p = tmp_path / "ontology.yaml"
    p.write_text(
        "ontology:\n  red square: square\n  blue ring: ring\n  crimson block: square\n"
        "detector:\n  backend: tests.fakes:FakeDetector\n  box_threshold: 0.3\n"
        "segmenter:\n  backend: tests.fakes:FakeSegmenter\n"
    )
    return p


@pytest.fixture
def labeled_run(tmp_path: Path, fake_ontology_yaml: Path) -> dict[str, Path]:
    """A finished run (fake backends) over generated images, incl. two files named x.png."""
    from autolabel.config.load import load_ontology
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RunSettings
    from tests.fakes import FakeDetector, FakeSegmenter
    from tests.helpers import write_images

    names = ["a/x.png", "b/x.png", "c.jpg", "d/e/f.png", "g.png", "h.png", "i.png", "j.png"]
    write_images(tmp_path / "in", names)
    from PIL import Image

    Image.new("RGB", (64, 48), (128, 128, 128)).save(tmp_path / "in" / "empty.png")  # no objects
    out = tmp_path / "out"
    run_labeling(
        load_ontology(fake_ontology_yaml),
        tmp_path / "in",
        out,
        RunSettings(),
        backends=(FakeDetector(), FakeSegmenter()),
    )
    return {"input": tmp_path / "in", "run": out}


from tests.tools import label_studio  # noqa: E402, F401 - a live Label Studio for the tests that name it
