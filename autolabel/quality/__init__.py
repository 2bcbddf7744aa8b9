"""Quality loop: ground truth matching, `eval`, `tune`, `review` (FiftyOne) and `preview`."""
