"""Contract: a running step run's output so far (``record_step_output``)."""

from __future__ import annotations

import pytest

from qflow.store.contract import MetadataStore
from qflow.store.metadata.records import StepOutcome, StepStatus

pytestmark = pytest.mark.integration


def test_output_so_far_is_recorded_only_while_the_step_runs(
    store: MetadataStore, unique: str
) -> None:
    run = store.create_run(workflow=unique, config={})
    (step,) = store.create_step_runs(
        run.id, [{"name": "0_train", "step": "train", "position": 0, "params": {}}]
    )

    def output() -> tuple[str | None, str | None]:
        found = store.step_run_by_id(step)
        assert found is not None
        return found.stdout, found.stderr

    store.record_step_output(step, "too early\n", "")  # pending: not running yet
    assert output() in ((None, None), ("", ""))

    store.start_step_run(step)
    store.record_step_output(step, "epoch 1\n", "warn é\n")
    assert output() == ("epoch 1\n", "warn é\n")
    store.record_step_output(step, "epoch 1\nepoch 2\n", "warn é\n")
    assert output() == ("epoch 1\nepoch 2\n", "warn é\n")

    store.finish_step_run(
        step, StepOutcome(StepStatus.SUCCEEDED, stdout="epoch 1\nepoch 2\ndone\n", stderr="")
    )
    store.record_step_output(step, "epoch 1\n", "stale\n")  # late: the final output stays
    assert output() == ("epoch 1\nepoch 2\ndone\n", "")
    store.record_step_output(-1, "x", "y")  # an unknown step run changes nothing
