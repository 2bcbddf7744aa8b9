"""Label Studio both ways: pre-annotations out, the reviewers' corrections back as ground truth, then eval.

    python examples/labelstudio_roundtrip.py ONTOLOGY FOLDER [LABEL_STUDIO_EXPORT.json]

1. labels FOLDER into runs/ls-example and writes Label Studio tasks (brush masks as predictions) and the
   labeling config (runs/ls-example/labelstudio/); with LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set,
   `autolabel push labelstudio` sends them to a project for you;
2. reads the JSON export of that project back (`import`): only the submitted tasks become ground truth;
3. scores the run against it (`eval`).

Without an export file and with AUTOLABEL_EXAMPLE_STAND_IN=1, a stand-in reviewer submits every
prediction unchanged (what the test suite runs offline).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from autolabel.annotate.importing import import_corrections
from autolabel.api import label_folder
from autolabel.quality.evaluate import evaluate_run


def stand_in_reviewer(tasks: Path, out: Path) -> Path:
    """A Label Studio export in which a person submitted every task's prediction as it was."""
    exported = []
    for k, task in enumerate(json.loads(tasks.read_text())):
        result = task["predictions"][0]["result"] if task.get("predictions") else []
        exported.append(
            {"id": k + 1, "data": task["data"], "annotations": [{"result": result, "was_cancelled": False}]}
        )
    out.write_text(json.dumps(exported))
    return out


def main(ontology: str, folder: str, export: str | None = None) -> None:
    run = Path("runs/ls-example")
    _, written = label_folder(ontology, folder, run, formats=["labelstudio"])
    print(f"Label Studio tasks and config: {written['labelstudio']}")
    if export is None and os.environ.get("AUTOLABEL_EXAMPLE_STAND_IN"):
        export = str(stand_in_reviewer(run / "labelstudio" / "tasks.json", run / "stand-in-export.json"))
    if export is None:
        print(
            f"next: import the tasks into Label Studio (or `autolabel push labelstudio {run} --url … --token …`),"
            " review, export JSON, then rerun with the export file"
        )
        return
    report = import_corrections(run, export, ["coco"])
    print(f"imported: {report.reviewed} reviewed images → {run / 'groundtruth.json'}")
    scores = evaluate_run(run, run / "groundtruth.json")
    print(f"eval: micro F1 {scores.overall['micro']['f1']}, mAP {scores.overall['micro'].get('segm_mAP')}")


if __name__ == "__main__":
    main(*sys.argv[1:])
