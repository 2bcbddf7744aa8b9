"""autolabel: turn a folder of unlabeled images into an instance-segmentation dataset.

Importing this package loads no model library (torch/transformers are imported lazily by backends).
"""

__version__ = "0.1.0"
