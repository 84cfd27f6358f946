"""``qf.run``: run a workflow from Python (notebooks, tests) and get the run back."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.client.client import Client, RunView

if TYPE_CHECKING:
    from qflow.dsl.workflow import Workflow


def run(
    workflow: Workflow[..., Any] | str,
    config: Mapping[str, Any] | None = None,
    *,
    overrides: Sequence[str] = (),
    project_dir: str | Path | None = None,
    executor: str = "local",
    workers: int | None = None,
    use_cache: bool = True,
    rerun: Collection[str] = (),
    plugins: Iterable[object] = (),
    tags: Mapping[str, str] | None = None,
    sweep_id: str | None = None,
    executor_options: Mapping[str, Any] | None = None,
    from_run: str | None = None,
    from_steps: Sequence[str] = (),
    to_steps: Sequence[str] = (),
) -> RunView:
    """Run ``workflow`` with ``config`` (or the project's config plus ``overrides``).

    ``executor`` is ``local`` or ``parallel`` (with ``workers``); by default the config's
    ``executor`` group decides, else ``local``.

    ``from_steps``/``to_steps`` run part of the workflow; what the chosen steps need from the
    steps left out, and workflow parameters no config value gives, come from run
    ``from_run`` (``qflow run --from RUN --from-steps ... --to-steps ...``).

    Returns the finished run. A failed step raises ``StepFailedError`` (with ``.run_id``);
    everything logged before the failure stays in the store.
    """
    from qflow.runtime.launch import LaunchRequest, launch

    request = LaunchRequest(
        workflow,
        config,
        overrides=overrides,
        project_dir=project_dir,
        executor=executor,
        workers=workers,
        executor_options=executor_options,
        use_cache=use_cache,
        rerun=rerun,
        plugins=list(plugins),
        tags=tags,
        command="",
        sweep_id=sweep_id,
        from_run=from_run,
        from_steps=from_steps,
        to_steps=to_steps,
    )
    run_id = launch(request)
    return Client(project_dir).run(run_id)
