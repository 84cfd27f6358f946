"""The pool's workers prepare a sweep's trials while they wait; what fails while they do is
met again by the trial, which reports it as if nothing had been prepared."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from qflow.errors import QFlowError

pytest.importorskip("optuna")

pytestmark = pytest.mark.integration

WORKFLOW = textwrap.dedent(
    """
    import qflow as qf

    @qf.step
    def score(x: float) -> float:
        qf.log_metric("score", (x - 0.3) ** 2)
        return x

    @qf.workflow
    def trivial(cfg):
        return score(cfg.x)
    """
)


@pytest.fixture
def module(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The workflow's module file in a project whose config sweeps ``x``."""
    name = f"sweeppool_{uuid.uuid4().hex[:8]}"
    (project / "src").mkdir()
    (project / "src" / f"{name}.py").write_text(WORKFLOW)
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "p"\n[tool.qflow]\nworkflow-modules = ["{name}"]\n'
    )
    (project / "conf").mkdir()
    (project / "conf" / "trivial.yaml").write_text(
        'x: 0.5\nsweep:\n  objective: score\n  params:\n    x: "float(0, 1)"\n'
    )
    monkeypatch.chdir(project)
    yield project / "src" / f"{name}.py"
    sys.modules.pop(name, None)


def test_pooled_trials_run_what_the_workers_prepared(module: Path) -> None:
    from qflow.client import Client
    from qflow.sweep.driver import start_sweep

    outcome = start_sweep("trivial", trials=3, parallel=2, sampler="random", pruner="none")
    assert [r.state for r in outcome.results] == ["complete"] * 3
    client = Client(module.parents[1])
    for result in outcome.results:
        run = client.run(result.run_id)
        assert run.config["x"] == result.params["x"]
        assert run.metrics_summary["score"] == pytest.approx((result.params["x"] - 0.3) ** 2)


def test_a_module_broken_before_the_workers_start_is_met_by_the_trial(
    module: Path,
) -> None:
    from qflow.sweep.driver import start_sweep

    def break_module(_: object) -> None:  # after the driver imported it, before the pool starts
        module.write_text(WORKFLOW + "\ndef broken(:\n")

    with pytest.raises(QFlowError, match=r"Trial 0 of sweep .*\(SyntaxError") as caught:
        start_sweep(
            "trivial",
            trials=2,
            parallel=2,
            sampler="random",
            pruner="none",
            on_start=break_module,
        )
    log = Path(str(caught.value).split("Hint: ")[1].split(" has its output")[0])
    assert "SyntaxError: invalid syntax" in log.read_text()
