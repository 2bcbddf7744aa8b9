"""autolabel: turn a folder of unlabeled images into an instance-segmentation dataset.

Importing this package loads no model library (torch/transformers are imported lazily by backends).

    from autolabel import Labeler
    dets = Labeler("ontology.yaml").label(["a.jpg"])
    result = autolabel.train("runs/data", model="yolo11n-seg.pt")  # a YOLO student, scored on hand labels
"""

from typing import Any

__version__ = "0.2.0"
__all__ = ["Detections", "Labeler", "label_folder", "train"]


def __getattr__(name: str) -> Any:  # lazy: `import autolabel` stays light
    if name == "Labeler":
        from autolabel.api import Labeler

        return Labeler
    if name == "Detections":
        from autolabel.types import Detections

        return Detections
    if name == "label_folder":
        from autolabel.api import label_folder

        return label_folder
    if name == "train":
        from autolabel.api import train

        return train
    raise AttributeError(f"module 'autolabel' has no attribute {name!r}")
