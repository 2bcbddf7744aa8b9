"""A run directory: the run store (source of truth, resumable), the `Run` object every command reads it
through, run settings and summary, the labeling lifecycle and the executors that move batches."""
