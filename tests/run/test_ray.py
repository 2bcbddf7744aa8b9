"""`--ray`: the same labeling on a Ray Data actor pool (a local Ray on this machine)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, cli, import_blocker, write_images

pytest.importorskip("ray")
NAMES = [f"d{i % 3}/im{i:02d}.png" for i in range(12)]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    write_images(tmp_path / "in", NAMES)
    return tmp_path / "in"


def label_args(ont: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["label", str(ont), str(data), "-o", str(out), "-f", "coco,yolo", "-b", "2", "-q", *extra]


def exports(run: Path) -> dict[str, bytes]:
    files = [run / "coco" / "annotations.json", *sorted((run / "yolo" / "labels").rglob("*.txt"))]
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in files}


def _done(run: Path) -> int:
    try:
        con = sqlite3.connect(run / "run.sqlite", timeout=1)
        return con.execute("SELECT COUNT(*) FROM images WHERE status = 'done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    e = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "autolabel.cli", *args],
        env=e,
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _wait_for(run: Path, n: int, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    t = time.time()
    while _done(run) < n:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() - t < timeout
        time.sleep(0.2)


def test_ray_ctrl_c_sigkill_and_a_dying_worker_still_end_byte_identical(
    fake_ontology_yaml: Path, data: Path, tmp_path: Path
) -> None:
    """One run interrupted by Ctrl-C, resumed and SIGKILLed, resumed again on two workers one of which
    dies (Ray restarts it and retries its batch): the exports equal a one-process run's."""
    run = tmp_path / "ray"
    args = label_args(fake_ontology_yaml, data, run, "--ray", "--workers", "1")
    slow = {"AUTOLABEL_FAKE_DELAY": "0.3"}
    p = _start(args, slow)
    _wait_for(run, 2, p)
    os.kill(p.pid, signal.SIGINT)  # Ctrl-C: a clean stop
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "rerun the same command to resume" in err
    first = _done(run)
    p = _start(args, slow)
    _wait_for(run, first + 2, p)
    os.killpg(p.pid, signal.SIGKILL)  # the driver and everything it started
    p.wait()
    assert _done(run) < 12
    r = cli(
        *label_args(fake_ontology_yaml, data, run, "--ray", "--workers", "2"),
        env={"AUTOLABEL_FAKE_DIE_ONCE": str(tmp_path / "died")},
    )  # the first worker call kills its process
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "died").exists(), "a worker died and Ray retried its batch"
    assert _done(run) == 12
    r = cli(*label_args(fake_ontology_yaml, data, tmp_path / "local"))
    assert r.returncode == 0, r.stderr
    assert exports(run) == exports(tmp_path / "local")


def test_ray_missing_is_an_install_hint(fake_ontology_yaml: Path, data: Path, tmp_path: Path) -> None:
    r = cli(*label_args(fake_ontology_yaml, data, tmp_path / "o", "--ray"), env=import_blocker(tmp_path, ["ray"]))
    assert r.returncode == 2 and "pip install 'autolabel[ray]'" in r.stderr and "Traceback" not in r.stderr


def test_a_ray_run_prints_only_autolabel_and_logs_ray_to_the_run(
    fake_ontology_yaml: Path, data: Path, tmp_path: Path
) -> None:
    """No Ray WARNING / core_worker / deprecation lines on the terminal: they go to RUN/ray.log (said)."""
    import warnings

    run = tmp_path / "ray"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = cli("label", str(fake_ontology_yaml), str(data), "-o", str(run), "-f", "coco", "--ray", "--workers", "2")
    assert r.returncode == 0, r.stderr
    for noise in ("WARNING", "core_worker", "Deprecat", "ray_remote_args", "Token authentication"):
        assert noise not in r.stderr + r.stdout, noise
    assert f"Ray's own messages: {run / 'ray.log'}" in r.stderr
    assert "Execution plan" in (run / "ray.log").read_text()


def test_a_batch_that_kills_its_worker_every_time_is_skipped_not_retried_forever(
    fake_ontology_yaml: Path, data: Path, tmp_path: Path
) -> None:
    """Ray restarts a dead replica without limit; autolabel gives such a batch 3 retries, each alone in its
    replica, so the batches that shared the replica with it are not blamed: they are labeled."""
    write_images(data, ["poison.png"], size=(161, 120))
    run = tmp_path / "ray"
    r = cli(
        *label_args(fake_ontology_yaml, data, run, "--ray", "--workers", "1", "-b", "1"),
        env={"AUTOLABEL_FAKE_DIE_ON_WIDTH": "161"},
    )
    assert r.returncode == 3, r.stderr  # finished, with a skipped image
    skipped = (run / "skipped.txt").read_text().splitlines()
    assert skipped == ["poison.png\tits Ray worker died on this batch 4 times"]  # 1 try + 3 retries
    assert _done(run) == len(NAMES)


def test_losing_the_replica_nodes_stops_cleanly_and_a_rerun_completes_byte_identical(
    fake_ontology_yaml: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A two-node cluster on this machine, replicas pinned to the non-head node by a custom resource: that
    node is removed mid-run. The run stops with the reason (Ray alone would wait for such a node forever),
    keeps what it finished, and a rerun on a new node completes; the exports equal a one-process run's."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("AUTOLABEL_FAKE_DELAY", "0.4")  # the nodes' workers inherit it
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray's single-machine mode: 127.0.0.1 stays
    loopback = {"node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, **loopback})
    try:
        worker = cluster.add_node(num_cpus=1, resources={"labeler": 1}, **loopback)
        cluster.wait_for_nodes()
        run = tmp_path / "ray"
        pinned = ["--ray", "--ray-address", cluster.address, "--workers", "1", "--ray-resource", "labeler=1"]
        p = _start(label_args(fake_ontology_yaml, data, run, *pinned), {})
        _wait_for(run, 2, p, timeout=180)
        cluster.remove_node(worker)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 1, err
        assert "no node of the Ray cluster offers what a model replica needs any more (labeler=1)" in err
        kept = _done(run)
        assert 2 <= kept < len(NAMES)
        cluster.add_node(num_cpus=1, resources={"labeler": 1}, **loopback)
        cluster.wait_for_nodes()
        r = cli(*label_args(fake_ontology_yaml, data, run, *pinned), env={"AUTOLABEL_FAKE_DELAY": "0"})
        assert r.returncode == 0, r.stderr
        assert _done(run) == len(NAMES)
        con = sqlite3.connect(run / "run.sqlite")
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT relpath) FROM images").fetchone() == (12, 12)
    finally:
        cluster.shutdown()
    r = cli(*label_args(fake_ontology_yaml, data, tmp_path / "local"))
    assert r.returncode == 0, r.stderr
    assert exports(run) == exports(tmp_path / "local")


def test_a_local_ray_run_never_joins_another_cluster_on_the_machine(
    fake_ontology_yaml: Path, data: Path, tmp_path: Path
) -> None:
    """`ray.init()` without an address joins the cluster last started on the machine (`ray start`, or a
    test's multi-node cluster: Ray keeps its address in <tmp>/ray/ray_current_cluster): a stale or foreign
    one made `label --ray` wait for its GCS forever. A local run starts its own Ray whatever ran before."""
    import shutil
    import tempfile

    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths live below it
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:9")  # a cluster that is not there
    try:
        r = subprocess.run(
            [sys.executable, "-m", "autolabel.cli", *label_args(fake_ontology_yaml, data, tmp_path / "out", "--ray")],
            env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "RAY_TMPDIR": str(ray_tmp)},
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert r.returncode == 0, r.stderr
    assert _done(tmp_path / "out") == len(NAMES)


def test_a_killed_raylet_ends_the_run_with_an_error_line_and_a_rerun_resumes(
    fake_ontology_yaml: Path, data: Path, tmp_path: Path
) -> None:
    """Ray ends its driver process itself when the raylet dies (raw Ray lines, exit 1, no `error:` line
    before): the watching parent now says what happened and that a rerun resumes; the rerun completes and
    its exports equal a one-process run's."""
    import psutil

    run = tmp_path / "ray"
    args = label_args(fake_ontology_yaml, data, run, "--ray", "--workers", "1")
    p = _start(args, {"AUTOLABEL_FAKE_DELAY": "0.4"})
    _wait_for(run, 2, p)
    raylets = [c for c in psutil.Process(p.pid).children(recursive=True) if "raylet" in " ".join(c.cmdline())[:300]]
    raylets = [c for c in raylets if c.name() == "raylet" or c.cmdline()[0].endswith("/raylet")]
    assert raylets, "the run's raylet"
    for c in raylets:
        c.kill()
    _, err = p.communicate(timeout=180)
    assert p.returncode == 1, err[-2000:]
    assert "error: the labeling process ended without a word" in err and "a rerun of the same command resumes" in err
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert _done(run) == 12
    r = cli(*label_args(fake_ontology_yaml, data, tmp_path / "local"))
    assert r.returncode == 0, r.stderr
    assert exports(run) == exports(tmp_path / "local")
