"""Images in object storage, against a local S3-compatible server (moto, bound to 127.0.0.1 only): listing
into the run's manifest, resume without listing again, changed and missing objects, the YOLO export
downloading, and Ray workers fetching the bytes themselves."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from autolabel import storage
from tests.helpers import cli, write_images

pytest.importorskip("moto")
pytest.importorskip("pyarrow")
NAMES = [f"d{i % 2}/im{i:02d}.png" for i in range(6)]


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A bucket `photos` with NAMES under `in/`; yields the environment that reaches it."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(storage, "_STORES", {})
    urllib.request.urlopen(urllib.request.Request(f"{env['AWS_ENDPOINT_URL']}/moto-api/reset", method="POST"))
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])  # moto keeps its state per process:
    client.create_bucket(Bucket="photos")  # reset above, so every test starts from this bucket alone
    for p in write_images(tmp_path / "local", NAMES):
        client.upload_file(str(p), "photos", "in/" + p.relative_to(tmp_path / "local").as_posix())
    client.put_object(Bucket="photos", Key="in/notes.txt", Body=b"not an image")
    try:
        yield {**env, "local": str(tmp_path / "local")}
    finally:
        server.stop()


def _label(ont: Path, src: str, out: Path, env: dict[str, str], *extra: str) -> dict:
    r = cli("label", str(ont), src, "-o", str(out), "-f", "coco", "-q", *extra, env=env)
    assert r.returncode in (0, 3), r.stderr
    return json.loads((out / "summary.json").read_text())


def _coco(out: Path) -> bytes:
    return (out / "coco" / "annotations.json").read_bytes()


def test_a_bucket_is_labeled_like_the_folder_and_listed_once(
    fake_ontology_yaml: Path, s3: dict, tmp_path: Path
) -> None:
    import boto3

    out = tmp_path / "run"
    s = _label(fake_ontology_yaml, "s3://photos/in/", out, s3)
    assert s["processed"] == 6 and not s["skipped"]
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["source"] == "s3://photos/in"
    assert [json.loads(x)["relpath"] for x in lines[1:]] == sorted(NAMES)  # notes.txt is no image
    _label(fake_ontology_yaml, s3["local"], tmp_path / "local-run", s3)
    assert _coco(out) == _coco(tmp_path / "local-run")  # file_name: the path under the prefix

    client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"])
    extra = write_images(tmp_path / "more", ["d9/new.png"])[0]
    client.upload_file(str(extra), "photos", "in/d9/new.png")
    s = _label(fake_ontology_yaml, "s3://photos/in", out, s3)  # the manifest, not a new listing
    assert (s["images_total"], s["processed"]) == (6, 0)
    s = _label(fake_ontology_yaml, "s3://photos/in", out, s3, "--relist")
    assert (s["images_total"], s["already_done"], s["processed"]) == (7, 6, 1)


def test_changed_and_missing_objects(fake_ontology_yaml: Path, s3: dict, tmp_path: Path) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"])
    out = tmp_path / "run"
    _label(fake_ontology_yaml, "s3://photos/in", out, s3, "--limit", "3")  # the manifest lists all six
    client.delete_object(Bucket="photos", Key="in/" + sorted(NAMES)[4])
    s = _label(fake_ontology_yaml, "s3://photos/in", out, s3)
    assert s["skipped"] == [
        {"relpath": sorted(NAMES)[4], "reason": "object not found (deleted since it was listed? rerun with --relist)"}
    ]
    r = cli("label", str(fake_ontology_yaml), "s3://photos/in", "-o", str(out), "-f", "coco", "-q", "--relist", env=s3)
    assert r.returncode == 0, r.stderr  # listed again: the deleted object is no longer skipped (was exit 3)
    assert sorted(NAMES)[4] not in (out / "skipped.txt").read_text()
    bigger = write_images(tmp_path / "other", ["x.png"], size=(200, 150))[0]
    client.upload_file(str(bigger), "photos", "in/" + sorted(NAMES)[0])  # another picture under the same key
    s = _label(fake_ontology_yaml, "s3://photos/in", out, s3, "--relist")
    assert s["changed"] == 1 and s["processed"] == 1
    coco = json.loads(_coco(out))
    assert {im["file_name"]: im["width"] for im in coco["images"]}[sorted(NAMES)[0]] == 200
    assert sorted(NAMES)[4] not in {im["file_name"] for im in coco["images"]}


def test_the_yolo_export_downloads_the_images(fake_ontology_yaml: Path, s3: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = cli("label", str(fake_ontology_yaml), "s3://photos/in", "-o", str(out), "-f", "yolo", "-q", env=s3)
    assert r.returncode == 0, r.stderr
    images = sorted(p for p in (out / "yolo" / "images").rglob("*.png"))
    assert len(images) == 6 and not any(p.is_symlink() for p in images)
    for p in images:
        rel = p.relative_to(out / "yolo" / "images").as_posix().split("/", 1)[1]  # below the split folder
        assert p.read_bytes() == (Path(s3["local"]) / rel).read_bytes()


def test_a_missing_bucket_is_a_clear_error(fake_ontology_yaml: Path, s3: dict, tmp_path: Path) -> None:
    r = cli("label", str(fake_ontology_yaml), "s3://no-such-bucket/x", "-o", str(tmp_path / "o"), env=s3)
    assert r.returncode == 2 and "cannot list 's3://no-such-bucket/x'" in r.stderr and "Traceback" not in r.stderr


def test_ray_workers_fetch_from_the_bucket(fake_ontology_yaml: Path, s3: dict, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    s = _label(fake_ontology_yaml, "s3://photos/in", out, s3, "--ray", "--workers", "1", "-b", "2")
    assert s["processed"] == 6
    _label(fake_ontology_yaml, "s3://photos/in", tmp_path / "one", s3)
    assert _coco(out) == _coco(tmp_path / "one")
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")


def test_the_listing_follows_every_page(s3: dict) -> None:
    """S3 lists 1,000 keys a page: a prefix with more is listed whole."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket="many")
    for i in range(1005):
        client.put_object(Bucket="many", Key=f"p/{i:05d}.jpg", Body=b"x")
    objects = storage.list_images("s3://many/p/", (".jpg",))
    assert len(objects) == 1005 and objects[-1]["relpath"] == "01004.jpg" and objects[0]["size"] == 1


def test_an_object_rewritten_with_the_same_size_is_known_by_its_etag(
    fake_ontology_yaml: Path, s3: dict, tmp_path: Path
) -> None:
    import boto3
    from PIL import Image

    from tests.helpers import scene

    client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"])
    first, second = tmp_path / "a.bmp", tmp_path / "b.bmp"
    scene(seed=1).save(first)
    Image.new("RGB", (160, 120), (128, 128, 128)).save(second)  # another picture, the same byte count
    assert first.stat().st_size == second.stat().st_size
    client.upload_file(str(first), "photos", "in/same.bmp")
    out = tmp_path / "run"
    s = _label(fake_ontology_yaml, "s3://photos/in", out, s3)
    assert s["processed"] == 7
    client.upload_file(str(second), "photos", "in/same.bmp")
    s = _label(fake_ontology_yaml, "s3://photos/in", out, s3, "--relist")
    assert s["changed"] == 1 and s["processed"] == 1
    listed = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()[1:]]
    etag = next(o["etag"] for o in listed if o["relpath"] == "same.bmp")
    assert etag == hashlib.md5(second.read_bytes()).hexdigest()  # the content, not the time, says it changed
    coco = json.loads(_coco(out))
    same = next(im["id"] for im in coco["images"] if im["file_name"] == "same.bmp")
    assert not [a for a in coco["annotations"] if a["image_id"] == same]  # the new picture holds nothing


def test_the_arrow_store_behind_gs_and_az_lists_and_fetches(s3: dict) -> None:
    """gs:// and az:// go through Arrow's file systems: the same store code, run here on Arrow's S3 file
    system against the local server (no GCS or Azure emulator in this environment)."""
    import pyarrow.fs as pafs

    scheme, _, endpoint = s3["AWS_ENDPOINT_URL"].partition("://")
    store = storage.ArrowStore("gs", "photos", fs=pafs.S3FileSystem(endpoint_override=endpoint, scheme=scheme))
    listed = {o["key"]: o for o in store.list("in")}
    assert sorted(k for k in listed if k.endswith(".png")) == sorted("in/" + n for n in NAMES)
    first = sorted(NAMES)[0]
    data = store.fetch("in/" + first)
    assert data == (Path(s3["local"]) / first).read_bytes() and listed["in/" + first]["size"] == len(data)
    assert listed["in/" + first]["mtime_ns"] > 0
    with pytest.raises(FileNotFoundError):
        store.fetch("in/none.png")


def test_label_studio_tasks_of_a_bucket_run_reference_the_objects(
    fake_ontology_yaml: Path, s3: dict, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    r = cli("label", str(fake_ontology_yaml), "s3://photos/in", "-o", str(out), "-f", "labelstudio", "-q", env=s3)
    assert r.returncode == 0, r.stderr
    tasks = json.loads((out / "labelstudio" / "tasks.json").read_text())
    assert tasks[0]["data"]["image"] == "s3://photos/in/" + sorted(NAMES)[0]
    notes = (out / "labelstudio" / "README.md").read_text()
    assert "the bucket of s3://photos/in" in notes and "LOCAL_FILES_DOCUMENT_ROOT" not in notes


def test_a_source_that_goes_down_stops_the_run_and_a_rerun_resumes(
    fake_ontology_yaml: Path, s3: dict, tmp_path: Path
) -> None:
    """An endpoint down (or credentials missing) on resume: the run stops after images failing in a row with
    one error line, instead of trying and skipping every remaining object; the rerun resumes."""
    import time

    import boto3

    client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"])
    for p in write_images(tmp_path / "more", [f"m/{i:02d}.png" for i in range(12)]):
        client.upload_file(str(p), "photos", "in/" + p.relative_to(tmp_path / "more").as_posix())
    out = tmp_path / "run"
    _label(fake_ontology_yaml, "s3://photos/in", out, s3, "--limit", "1")  # the manifest lists all 18
    for down in ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}):
        t = time.perf_counter()
        r = cli(
            "label",
            str(fake_ontology_yaml),
            "s3://photos/in",
            "-o",
            str(out),
            "-f",
            "coco",
            "-q",
            "-b",
            "1",
            env={
                **s3,
                **down,
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "AWS_CONFIG_FILE": str(tmp_path / "none"),
            },
        )
        assert r.returncode == 1, r.stderr
        assert "error: the image source failed on" in r.stderr and "a rerun of the same command resumes" in r.stderr
        assert r.stderr.count("error:") == 1 and time.perf_counter() - t < 120
    s = _label(fake_ontology_yaml, "s3://photos/in", out, s3)
    assert s["processed"] == 17 and not s["skipped"]  # the rest, now that the source is back
