"""Trackers for external services (MLflow, Weights & Biases): pluggy hookimpls, optional
extras, imported lazily. ``qflow.tracking.selection`` creates them from the config."""
