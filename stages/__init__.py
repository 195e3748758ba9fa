"""The DVC stages: one thin script per stage of dvc.yaml (read params, call `prunelab`, write the declared outputs)."""
