"""Training a student model on a run's labels (ultralytics YOLO) and scoring it against the hand labels."""
