"""Hyperparameter sweeps: Optuna searches over a workflow's config, one QFlow run per trial.

``start_sweep`` / ``resume_sweep`` (``qflow.sweep.driver``) run a sweep; ``sweep_report``
(``qflow.sweep.report``) summarises one. Optuna is imported only when a sweep runs.
"""
