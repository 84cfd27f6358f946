"""Trackers for external services (MLflow, Weights & Biases): pluggy hookimpls, optional
extras, imported lazily. ``qflow.runtime.trackers`` creates them from the config."""
