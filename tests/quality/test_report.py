"""`autolabel report`: one self-contained page (nothing outside it is requested), with the run's decisions,
classes, tune and eval results, examples with masks and skipped images; refreshed by a later export; and
opened in a real headless Chromium offline: not blank, no console error."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from autolabel.quality.report_html import write_report
from tests.helpers import cli
from tests.quality.test_review import gt_from_run


def full_run(labeled_run: dict[str, Path], tmp_path: Path) -> Path:
    run = labeled_run["run"]
    gt = gt_from_run(run, tmp_path)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    for args in (
        ("tune", str(run), "--gt", str(tmp_path / "gt.json")),
        ("eval", str(run), "--gt", str(tmp_path / "gt.json")),
    ):
        assert cli(*args).returncode == 0
    return run


def test_the_report_is_one_self_contained_page_with_every_section(labeled_run: dict, tmp_path: Path) -> None:
    run = full_run(labeled_run, tmp_path)
    (labeled_run["input"] / "broken.png").write_text("not an image")
    assert (
        cli("label", str(tmp_path / "ontology.yaml"), str(labeled_run["input"]), "-o", str(run), "-q").returncode == 3
    )
    page = write_report(run).read_text()
    for section in (
        "<h2>Run</h2>",
        "<h2>Classes</h2>",
        "<h2>Tune</h2>",
        "<h2>Eval</h2>",
        "<h2>Examples</h2>",
        "Skipped images (1)",
        "Time per stage",
        "PR curves (tune)",
    ):
        assert section in page, section
    assert "broken.png" in page and "square: lowest score" in page and "threshold 0.3" in page
    assert page.count("data:image/jpeg;base64,") >= 3  # example thumbnails, inlined
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', page)
    assert refs and all(r.startswith("data:") for r in refs)  # nothing to fetch, from anywhere
    assert "default-src 'none'" in page
    assert not list(run.glob(".al-*.tmp"))


def test_a_later_export_refreshes_the_report_and_says_where_it_is(labeled_run: dict, tmp_path: Path) -> None:
    run = labeled_run["run"]
    assert cli("report", str(run)).returncode == 0
    r = cli("export", str(run), "--box-threshold", "0.62", "-f", "coco")
    assert r.returncode == 0 and f"report: {run / 'report.html'}" in r.stdout
    assert "--box-threshold 0.62" in (run / "report.html").read_text()


def test_chromium_opens_the_report_offline_and_it_is_not_blank(labeled_run: dict, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium (make browser installs it)")
    run = full_run(labeled_run, tmp_path)
    page = write_report(run)
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,1800",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # no way out, should it try
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), proc.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01  # text, tables and pictures, not a blank page
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    assert "ERR_PROXY" not in proc.stderr and "net::ERR" not in proc.stderr
