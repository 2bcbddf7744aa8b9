"""`autolabel serve`: the labeling engine behind HTTP — a Label Studio ML backend and a plain JSON API."""
