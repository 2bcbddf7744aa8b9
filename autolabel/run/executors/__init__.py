"""Executors only move batches between inference and the run store: `local` (one process, pipelined)
and `ray` (Ray Data actors on a machine or a cluster)."""
