"""Pruning: a QFlow plugin that feeds a trial's objective metric to Optuna's pruner.

Every value of the objective metric logged with a step index (``qf.log_metric("accuracy", v,
step=epoch)``) is reported to the trial (``trial.report(value, step)``) when QFlow writes it
to the store: as the step logs them (flushed every 0.25 s) and when the step ends. After
each batch the plugin asks ``trial.should_prune()``. Once the answer is yes:

- the trial is recorded in Optuna as ``PRUNED`` and its QFlow run gets the tag
  ``sweep.pruned=true``;
- the run is stopped early: when the hook runs in the run's main thread (a step's last flush)
  the plugin raises ``TrialPruned`` (a ``KeyboardInterrupt``) there; when the trial runs in
  its own process (``--parallel`` > 1), a SIGINT to that process's main thread stops it
  whatever the executor; when the recorder's background thread flushed the values of a step
  running in this process (the ``local`` executor), the step's next ``qf.log_metric`` raises
  ``TrialPruned``. QFlow then ends the run as ``killed``, keeping what it logged, exactly as
  for Ctrl-C. Otherwise (workers of the ``parallel`` or ``ray`` executor inside the sweep's own
  process) the run finishes, and only the records say it was pruned.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qflow.plugins.markers import hookimpl
from qflow.runtime.context import stop_run

if TYPE_CHECKING:
    import optuna

PRUNERS = ("median", "hyperband", "successive_halving", "percentile", "none")


class TrialPruned(KeyboardInterrupt):
    """Raised in a run's main thread to stop the run of a trial Optuna pruned."""


def create_pruner(name: str) -> optuna.pruners.BasePruner:
    """An Optuna pruner by name (``none`` never prunes)."""
    import optuna

    from qflow.errors import ConfigError, did_you_mean

    factories: dict[str, Any] = {
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "percentile": lambda: optuna.pruners.PercentilePruner(25.0),
        "none": optuna.pruners.NopPruner,
    }
    if name not in factories:
        raise ConfigError(
            f"Unknown pruner {name!r}; pruners: {', '.join(PRUNERS)}.{did_you_mean(name, PRUNERS)}"
        )
    pruner: optuna.pruners.BasePruner = factories[name]()
    return pruner


class PruningReporter:
    """Reports the objective's intermediate values of one run to one Optuna trial.

    Args:
        trial: the trial the run belongs to.
        objective: the metric whose step-indexed values are reported.
        own_process: True when the run is the only thing its process does, so a SIGINT to
            the main thread may stop it from any thread.
    """

    def __init__(self, trial: optuna.trial.Trial, objective: str, *, own_process: bool) -> None:
        self.trial = trial
        self.objective = objective
        self.own_process = own_process
        self.run_id: str | None = None
        self.pruned_at: int | None = None
        self._reported: set[int] = set()
        self._lock = threading.Lock()

    @property
    def pruned(self) -> bool:
        return self.pruned_at is not None

    @hookimpl
    def before_run(self, run_id: str) -> None:
        self.run_id = run_id

    @hookimpl
    def on_metrics(
        self, run_id: str, step: str | None, rows: Sequence[tuple[str, float, int | None, float]]
    ) -> None:
        with self._lock:
            if self.pruned_at is not None:
                return
            last: int | None = None
            for key, value, index, _ in rows:
                if key != self.objective or index is None or index in self._reported:
                    continue
                if not math.isfinite(value):
                    continue
                self.trial.report(value, index)
                self._reported.add(index)
                last = index
            if last is None or not self.trial.should_prune():
                return
            self.pruned_at = last
        self._stop(last)

    def _stop(self, index: int) -> None:
        message = f"trial {self.trial.number} pruned at step {index}"
        if threading.current_thread() is threading.main_thread():
            raise TrialPruned(message)
        ident = threading.main_thread().ident
        if self.own_process and ident is not None:  # a signal also ends a blocking call
            signal.pthread_kill(ident, signal.SIGINT)
        elif self.run_id is not None:  # flushed by the recorder's thread: stop at the next log
            stop_run(self.run_id, TrialPruned(message))
