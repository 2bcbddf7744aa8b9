"""Annotation tools both ways: corrections read back from Label Studio, CVAT or COCO (`corrections`),
what the reviewers changed (`changes`), the import into a run (`importing`) and `push` to Label Studio."""
