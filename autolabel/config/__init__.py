"""Configuration: the ontology schema and its YAML loading/validation, the run plan (inference settings,
fingerprint, decision settings) and thresholds files. Imports no model library."""
