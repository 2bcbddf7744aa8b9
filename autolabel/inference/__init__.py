"""Inference, the only GPU part: the pure batch function (`stages.infer_batch`, in three stages), model
loading and preflight (`models`), and tiling around a detector (`tiling`)."""
