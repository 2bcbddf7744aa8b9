"""`autolabel push labelstudio RUN --url URL --token T`: the run's labels into a Label Studio project in one
step, over Label Studio's REST API (the same endpoints label-studio-sdk calls; the SDK itself pins older
NumPy and OpenCV and pulls in two dozen packages, so it is not a dependency).

Finds the run's project by the run itself (its id, `autolabel run <id>`, is kept in the project's
description), else creates one (labeling config for the run's classes); `--project TITLE` names it. A
project that holds another run, or whose labeling config cannot show the run's labels (no BrushLabels /
PolygonLabels on the image, or a class missing), is refused, saying what differs, before anything is
changed. Then it attaches a local-files storage on the labeled folder (so Label Studio can serve the
images) and imports the tasks with their predictions: only tasks for images the project does not hold
yet, so a second push adds nothing twice.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from autolabel.errors import UsageError
from autolabel.export import ExportOptions, export_run
from autolabel.storage import is_uri

CHUNK = 500  # tasks per import request (large imports time out: label-studio#6330)


class LabelStudioClient:
    def __init__(self, url: str, token: str, timeout: float = 120.0) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout
        self.auth = f"Token {token}"
        if token.count(".") == 2:  # a personal access token (JWT): exchange it for an access token
            access = self.request("POST", "/api/token/refresh", {"refresh": token}, auth=False)["access"]
            self.auth = f"Bearer {access}"

    def request(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None, auth: bool = True
    ) -> Any:
        url = self.url + path + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", self.auth)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                text = r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            detail = _detail(e.read().decode("utf-8", "replace"))
            hint = "check --token (Account & Settings → Access Token)" if e.code in (401, 403) else ""
            raise UsageError(f"Label Studio answered {e.code} to {method} {path}: {detail}", hint=hint) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise UsageError(
                f"cannot reach Label Studio at {self.url} ({reason})", hint="is it running? check --url"
            ) from None
        return json.loads(text) if text.strip() else None

    def paged(self, path: str, query: dict[str, Any], key: str) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            got = self.request("GET", path, query={**query, "page": page, "page_size": 100})
            items = got if isinstance(got, list) else got.get(key) or []
            out += items
            if isinstance(got, list) or not items or (got.get("next") is None and key == "results"):
                return out
            if key == "tasks" and len(out) >= int(got.get("total", 0)):
                return out
            page += 1


def _detail(body: str) -> str:
    """Label Studio's error body in a line: its validation messages, else its detail, else the text."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:300]
    errors = data.get("validation_errors") if isinstance(data, dict) else None
    if isinstance(errors, dict):
        text = "; ".join(str(m) for msgs in errors.values() for m in (msgs if isinstance(msgs, list) else [msgs]))
        return text[:300] + (" …" if len(text) > 300 else "")
    return str(data.get("detail", body))[:300] if isinstance(data, dict) else body[:300]


@dataclass
class PushReport:
    project_id: int
    project_url: str
    created: bool
    imported: int
    already: int


MARK = "autolabel run "  # the project's description names the run it holds: `autolabel run <id> (<dir>)`


def run_id(run_dir: Path, fingerprint: str) -> str:
    """Who a project belongs to: the run directory (resolved) and what it labeled."""
    import hashlib

    return hashlib.sha1(f"{run_dir.resolve()}\n{fingerprint}".encode()).hexdigest()[:12]


def _holder(project: dict) -> str | None:
    text = str(project.get("description") or "")
    return text[len(MARK) :].split(" ", 1)[0] if text.startswith(MARK) else None


def _project(
    client: LabelStudioClient, title: str | None, default: str, me: str, classes: list[str]
) -> tuple[dict | None, str]:
    """(the run's project or None to create one, the title a new one gets); refuses a project of another run
    or whose labeling config does not fit, before anything is changed."""
    projects = client.paged("/api/projects/", {}, "results")
    if title is None:
        mine = [p for p in projects if _holder(p) == me]
        if mine:
            return mine[0], ""
        taken = {str(p.get("title")) for p in projects}
        return None, default if default not in taken else f"{default} {me[:6]}"
    named = [p for p in projects if p.get("title") == title]
    if not named:
        return None, title
    project = next((p for p in named if _holder(p) == me), named[0])
    other = _holder(project)
    if other not in (None, me):
        raise UsageError(
            f"Label Studio project '{title}' holds another autolabel run ({project.get('description')})",
            hint="push to another --project, or leave --project out (each run gets its own project)",
        )
    problem = config_misfit(str(project.get("label_config") or ""), classes)
    if problem:
        raise UsageError(
            f"Label Studio project '{title}' cannot show this run's labels: {problem}",
            hint="leave --project out (a project with the right labeling config is made), or paste "
            "RUN/labelstudio/config.xml into its Labeling Interface",
        )
    return project, ""


def config_misfit(config: str, classes: list[str]) -> str | None:
    """What keeps a labeling config from showing the run's regions (BrushLabels and PolygonLabels named as
    `-f labelstudio` writes them, on the image, with every class), or None."""
    import xml.etree.ElementTree as ET

    from autolabel.export.labelstudio import BRUSH, IMAGE, POLYGON

    try:
        root = ET.fromstring(config)
    except ET.ParseError:
        return "its labeling config is not XML"
    if not any(el.tag == "Image" and el.get("name") == IMAGE for el in root.iter()):
        return f'no <Image name="{IMAGE}"> (is it an image project?)'
    for tag, name in (("BrushLabels", BRUSH), ("PolygonLabels", POLYGON)):
        el = next((e for e in root.iter(tag) if e.get("name") == name and e.get("toName") == IMAGE), None)
        if el is None:
            return f'no <{tag} name="{name}" toName="{IMAGE}">'
        missing = [c for c in classes if c not in {lab.get("value") for lab in el.iter("Label")}]
        if missing:
            return f"its {tag} lack the classes {', '.join(missing[:10])}"
    return None


def _storage(client: LabelStudioClient, project: int, path: Path) -> None:
    have = client.request("GET", "/api/storages/localfiles/", query={"project": project}) or []
    if any(Path(s.get("path", "")) == path for s in have):
        return
    try:
        client.request(
            "POST",
            "/api/storages/localfiles/",
            {"project": project, "path": str(path), "title": "autolabel images", "use_blob_urls": False},
        )
    except UsageError as e:
        raise UsageError(
            f"Label Studio cannot serve the labeled folder '{path}': {e.message}",
            hint="start Label Studio with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to a folder above it (see --labelstudio-root)",
        ) from None


def push_labelstudio(
    run_dir: str | Path, url: str, token: str, project: str | None = None, options: ExportOptions | None = None
) -> PushReport:
    """Export the run for Label Studio (its recorded decisions) and push it; see the module doc."""
    run_dir = Path(run_dir)
    export_run(run_dir, ["labelstudio"], options or ExportOptions())
    folder = run_dir / "labelstudio"
    tasks = json.loads((folder / "tasks.json").read_text(encoding="utf-8"))
    config = (folder / "config.xml").read_text(encoding="utf-8")
    client = LabelStudioClient(url, token)
    from autolabel.run.run import Run

    with Run.open(run_dir) as run:
        me, classes, source, root = run_id(run_dir, run.meta.fingerprint), run.classes, run.source, run.input_root
    found, new_title = _project(client, project, f"autolabel {run_dir.resolve().name}", me, classes)
    description = f"{MARK}{me} ({run_dir.resolve()})"
    if found is None:
        made = client.request(
            "POST", "/api/projects/", {"title": new_title, "label_config": config, "description": description}
        )
        pid, created = int(made["id"]), True
    else:
        pid, created = int(found["id"]), False
        if _holder(found) is None:  # a project made by hand, checked to fit: it now holds this run
            client.request("PATCH", f"/api/projects/{pid}/", {"description": description})
    if not is_uri(source):  # a bucket is attached in Label Studio as S3 / GCS / Azure source storage
        _storage(client, pid, root.resolve())
    have = {
        t.get("data", {}).get("relpath") or t.get("data", {}).get("image")
        for t in client.paged("/api/tasks/", {"project": pid, "fields": "all"}, "tasks")
    }
    new = [t for t in tasks if t["data"]["relpath"] not in have and t["data"]["image"] not in have]
    for k in range(0, len(new), CHUNK):
        client.request("POST", f"/api/projects/{pid}/import", new[k : k + CHUNK], query={"return_task_ids": "true"})
    return PushReport(pid, f"{client.url}/projects/{pid}/data", created, len(new), len(tasks) - len(new))
