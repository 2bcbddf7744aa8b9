"""Video: frames decoded and sampled with PyAV (`decode`), detections linked into tracks (`track`), tracks
kept or dropped as a whole (`tracks`), and MOT `gt.txt` rows for box trackers (`mot`)."""
