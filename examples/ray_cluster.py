"""Label a folder on a Ray cluster: every GPU of every node runs a model replica, decoding runs beside them.

    python examples/ray_cluster.py ONTOLOGY FOLDER

With RAY_ADDRESS set (`ray start --head` on one machine, `ray start --address HEAD:6379` on the others)
it joins that cluster; without, it starts a two-node cluster on this machine (ray.cluster_utils), as the
test suite does. The run resumes like any other: kill it, rerun, and only the missing images are labeled.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from autolabel.api import label_folder
from autolabel.run.settings import RayOptions, RunSettings


def main(ontology: str, folder: str) -> None:
    cluster = None
    address = os.environ.get("RAY_ADDRESS")
    if address is None:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        cluster.add_node(num_cpus=1)
        address = cluster.address
    try:
        ray = RayOptions(address=address, workers=2, cpus_per_worker=0.25)
        summary, written = label_folder(ontology, folder, Path("runs/ray-example"), ["coco"], RunSettings(ray=ray))
        print(f"{summary.processed} images labeled on the cluster; replicas: {len(summary.replicas)}; {written}")
    finally:
        if cluster is not None:
            import ray as ray_lib

            ray_lib.shutdown()
            cluster.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
