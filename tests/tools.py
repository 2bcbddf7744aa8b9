"""Exports written from hand-made masks (every shape a format can get wrong), and the annotation tools'
own Python environments (label-studio with its SDK, datumaro: they pin other NumPy / OpenCV versions, so
`make test` installs them beside the project's, see the Makefile)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autolabel.export import ExportContext, ExportOptions, write_exports
from autolabel.types import Detections, ImageResult

CLASSES = ["cat", "dog"]


def _masks(h: int, w: int) -> list[np.ndarray]:
    parts = np.zeros((h, w), bool)  # two parts of one object
    parts[5:15, 5:20] = True
    parts[30:40, 50:58] = True
    ring = np.zeros((h, w), bool)  # a hole
    yy, xx = np.mgrid[:h, :w]
    d = (yy - 25) ** 2 + (xx - 30) ** 2
    ring[(d < 15**2) & (d >= 6**2)] = True
    pixel = np.zeros((h, w), bool)  # one pixel
    pixel[h - 3, 2] = True
    edge = np.zeros((h, w), bool)  # touching three borders
    edge[h - 8 :, :] = True
    return [parts, ring, pixel, edge]


def handmade_results() -> list[ImageResult]:
    out = []
    for k, (rel, w, h) in enumerate([("a/one.png", 64, 48), ("b/two.png", 80, 50)]):
        masks = _masks(h, w)
        from autolabel.masks import mask_to_xyxy

        boxes = np.stack([mask_to_xyxy(m) for m in masks])
        det = Detections(
            boxes,
            np.array([0, 1, 0, 1]) if k == 0 else np.array([1, 1, 0, 0]),
            np.array([0.91, 0.55, 0.42, 0.77]),
            ["cat", "dog", "cat", "dog"],
            np.stack(masks),
        )
        out.append(ImageResult(rel, w, h, det))
    return out


def write_handmade(tmp_path: Path, formats: list[str], **options: object) -> tuple[Path, list[ImageResult]]:
    """Exports of `handmade_results()` into tmp_path/out (images under tmp_path/data); returns (out, results)."""
    results = handmade_results()
    for r in results:
        p = tmp_path / "data" / r.relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (r.width, r.height), (90, 90, 90)).save(p)
    ctx = ExportContext(
        out_dir=tmp_path / "out",
        classes=CLASSES,
        images=[(r.relpath, r.width, r.height) for r in results],
        input_root=tmp_path / "data",
        has_masks=True,
        options=ExportOptions(**options),  # type: ignore[arg-type]
        polygon_tolerance=0.0,
        info={"model_version": "autolabel test"},
    )
    write_exports(ctx, formats, results)
    return tmp_path / "out", results


def tool_python(kind: str) -> str:
    """The Python of an annotation tool's environment (`labelstudio`, `datumaro`). `make test` provides them
    (and sets AUTOLABEL_REQUIRE_TOOLS, so a missing one fails there instead of skipping)."""
    path = os.environ.get(f"AUTOLABEL_{kind.upper()}_PYTHON", "")
    if path and Path(path).is_file():
        return path
    if os.environ.get("AUTOLABEL_REQUIRE_TOOLS"):
        pytest.fail(f"AUTOLABEL_{kind.upper()}_PYTHON is not set to a Python with {kind}: run `make test`")
    pytest.skip(f"no {kind} environment (make test sets AUTOLABEL_{kind.upper()}_PYTHON)")


def run_tool(kind: str, script: str, *args: str, timeout: float = 300) -> str:
    """Run `script` with the tool's Python; its stdout (a failure shows its stderr)."""
    p = subprocess.run([tool_python(kind), "-c", script, *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


TOKEN = "autolabel-test-token"
STARTUP_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def label_studio(tmp_path: Path) -> Iterator[str]:
    """A Label Studio on 127.0.0.1 serving local files under tmp_path; its URL."""
    python = tool_python("labelstudio")
    port = _free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(tmp_path),
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "ML_BLOCK_LOCAL_IP": "false",  # the ML backend under test listens on 127.0.0.1 too: Label Studio
        "USE_DEFAULT_BANNED_SUBNETS": "false",  # refuses loopback backends (and their webhook) otherwise
    }
    cmd = [
        str(Path(python).parent / "label-studio"),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "-p",
        str(port),
        "--data-dir",
        str(tmp_path / "ls-data"),
        "--username",
        "reviewer@example.com",
        "--password",
        "reviewer-pass-1",
        "--user-token",
        TOKEN,
        "--enable-legacy-api-token",
    ]
    log = open(tmp_path / "label-studio.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Label Studio did not start:\n" + (tmp_path / "label-studio.log").read_text()[-3000:])
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
