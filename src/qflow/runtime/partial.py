"""Partial and cross-run execution: run part of a workflow, its missing inputs taken from an
earlier run.

``--from-steps A`` keeps ``A`` and everything downstream of it, ``--to-steps B`` keeps ``B`` and
everything upstream of it (both: the steps between), as Kedro's ``--from-nodes``/``--to-nodes``.
A kept step whose input comes from a step left out needs that step's output: it is taken from
the earlier run (``--from RUN``; by default the latest run of the workflow that has it). The
step runs that provide them are recorded in the new run as ``cached`` from the earlier run's
step runs, so lineage, ``qflow show`` and the cache see where each input came from.

A workflow parameter that no config value gives (``data_science(model_input_table)``) is
taken from an output of the ``--from`` run with that name: an output named so, a step named
so, or a step named ``*_<name>`` (``create_model_input_table``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qflow.dsl.tracing import StepCall, TracedWorkflow
from qflow.dsl.workflow import bound_input
from qflow.errors import ConfigError, QFlowError, did_you_mean
from qflow.graph.model import Graph
from qflow.graph.validate import validate
from qflow.runtime.cachekey import graph_keys, step_run_keys
from qflow.store.metadata.records import StepStatus

if TYPE_CHECKING:
    from pathlib import Path

    from qflow.dsl.workflow import Workflow
    from qflow.store.artifacts import ArtifactRef
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import Run, StepRun

_FINISHED = (StepStatus.SUCCEEDED, StepStatus.CACHED)
_ITEM = re.compile(r"\[\d+\]$")


PartialRunError = QFlowError
"""Every error here is found before the run is recorded; the CLI prints it on one line."""


@dataclass(frozen=True)
class Binding:
    """A call of the new run answered by an earlier step run: its outputs, by the call's
    output names."""

    step_run: StepRun
    outputs: Mapping[str, ArtifactRef]
    same_call: bool = True
    """The earlier step run is this call (its metrics and files come along), not another
    step whose output a workflow parameter takes."""


@dataclass(frozen=True)
class Plan:
    """What a partial run runs (``traced``: the kept steps and the ones that provide their
    inputs) and which step calls are taken from which earlier step run (``bound``)."""

    traced: TracedWorkflow
    bound: Mapping[str, Binding]
    source: str | None


@dataclass(frozen=True)
class Prepared:
    """A workflow traced for one run: the whole graph (``whole``), what runs (``traced``),
    the calls taken from run ``source`` (``bound``), the workflow parameters taken from it
    (``inputs``) and every call's stable key in the whole graph (``keys``)."""

    whole: Graph
    traced: TracedWorkflow
    bound: Mapping[str, Binding]
    source: str | None
    inputs: tuple[str, ...]
    keys: Mapping[str, str]


def prepare(
    wf: Workflow[..., Any],
    config: Mapping[str, Any],
    root: Path,
    *,
    from_run: str | None = None,
    from_steps: Sequence[str] = (),
    to_steps: Sequence[str] = (),
) -> Prepared:
    """Trace ``wf`` with ``config`` (parameters no config value gives come from ``from_run``)
    and, for a partial or cross-run invocation, plan what runs and what is taken."""
    unbound = wf.unbound_parameters(config)
    if unbound and from_run is None:
        raise ConfigError(
            f"Workflow {wf.name!r} needs a value for {', '.join(map(repr, unbound))}.\n"
            f"Hint: qflow run {wf.name} {unbound[0]}=VALUE, or --from RUN to take it from "
            "an output of an earlier run."
        )
    traced = wf.trace(config, inputs=unbound)
    whole = traced.graph
    keys = graph_keys(whole)  # of the whole graph, so a part of it keeps its keys
    if from_run is None and not from_steps and not to_steps:
        return Prepared(whole, traced, {}, None, (), keys)
    from qflow.store import open_stores

    metadata, _ = open_stores(root)
    inputs = {n: c.step.name for n, c in traced.calls.items() if c.step.fn is bound_input}
    made = plan(
        metadata,
        traced,
        from_run=from_run,
        from_steps=from_steps,
        to_steps=to_steps,
        inputs=inputs,
    )
    return Prepared(whole, made.traced, made.bound, made.source, tuple(unbound), keys)


def _names(graph: Graph, given: Sequence[str], option: str) -> list[str]:
    """Node names for ``--from-steps``/``--to-steps`` values: a call (``3_fit``, or the name
    it was given: ``train_a``) or a step (``fit``: every call of it)."""
    found: list[str] = []
    calls = [node.name for node in graph.nodes]
    steps = sorted({node.step for node in graph.nodes} | {n.name for n in graph.nodes if n.named})
    for value in given:
        for name in (part.strip() for part in value.split(",")):
            chosen = [n.name for n in graph.nodes if name in (n.name, n.step)]
            if not chosen:
                raise PartialRunError(
                    f"{option} {name!r}: workflow {graph.workflow!r} has no such step; its "
                    f"steps are {', '.join(steps)}.{did_you_mean(name, sorted({*steps, *calls}))}\n"
                    f"Hint: qflow graph {graph.workflow} shows its steps."
                )
            found.extend(n for n in chosen if n not in found)
    return found


def select(graph: Graph, from_steps: Sequence[str], to_steps: Sequence[str]) -> set[str]:
    """The calls a partial run runs."""
    kept = {node.name for node in graph.nodes}
    if from_steps:
        starts = _names(graph, from_steps, "--from-steps")
        kept &= set(starts).union(*(graph.descendants(n) for n in starts))
    if to_steps:
        ends = _names(graph, to_steps, "--to-steps")
        kept &= set(ends).union(*(graph.ancestors(n) for n in ends))
    if not kept:
        raise PartialRunError(
            f"No step of workflow {graph.workflow!r} is both downstream of --from-steps and "
            "upstream of --to-steps. Hint: qflow graph shows which steps feed which."
        )
    return kept


def subgraph(traced: TracedWorkflow, keep: Collection[str]) -> TracedWorkflow:
    """``traced`` with only the calls in ``keep`` (and the edges between them)."""
    graph = traced.graph
    nodes = tuple(n for n in graph.nodes if n.name in keep)
    edges = tuple(e for e in graph.edges if e.source in keep and e.target in keep)
    calls: dict[str, StepCall] = {n: c for n, c in traced.calls.items() if n in keep}
    return TracedWorkflow(
        graph=validate(Graph(graph.workflow, nodes, edges)),
        calls=calls,
        result=traced.result,
        config=traced.config,
    )


def resolve_run(metadata: MetadataStore, run_id: str) -> Run:
    """The ``--from`` run, or a one-line error naming it and how to find one."""
    from qflow.errors import RunNotFoundError

    try:
        return metadata.get_run(run_id)
    except RunNotFoundError as exc:
        raise RunNotFoundError(
            f"--from: {exc}\nHint: qflow runs lists the runs; give an id or a unique prefix."
        ) from None


def _finished(metadata: MetadataStore, run_id: str) -> list[StepRun]:
    return [
        s
        for s in metadata.step_runs(run_id)
        if s.status in _FINISHED and s.outputs and not _ITEM.search(s.name)
    ]


def bind_calls(
    metadata: MetadataStore, run: Run, graph: Graph, wanted: Collection[str]
) -> dict[str, Binding]:
    """The step runs of ``run`` that stand for the calls ``wanted`` of ``graph``: matched by
    stable key (so reordered calls still match), else by run name, else the only finished
    call of the same step."""
    if not wanted:
        return {}
    finished = _finished(metadata, run.id)
    recorded = run.meta.get("step_keys")
    recorded_keys = step_run_keys(
        metadata.step_runs(run.id), recorded if isinstance(recorded, dict) else None
    )
    by_key = {recorded_keys.get(s.name): s for s in finished}
    by_name = {s.name: s for s in finished}
    keys = graph_keys(graph)
    bound: dict[str, Binding] = {}
    for name in sorted(wanted, key=lambda n: graph.by_name[n].position):
        node = graph.by_name[name]
        same_step = [s for s in finished if s.step == node.step]
        found = (
            by_key.get(keys[name])
            or by_name.get(name)
            or (same_step[0] if len(same_step) == 1 else None)
        )
        if found is None or set(node.outputs) - set(found.outputs):
            users = ", ".join(t for t in graph.downstream[name])
            raise PartialRunError(
                f"Run {run.id} ({run.workflow}) has no finished call of step {node.step!r} "
                f"({name}), whose output {users} needs.\n"
                f"Hint: pick a run where it finished (qflow runs --workflow {run.workflow}), "
                "or widen --from-steps to run it."
            )
        bound[name] = Binding(found, {o: found.outputs[o] for o in node.outputs})
    return bound


def output_for(metadata: MetadataStore, run: Run, parameter: str) -> Binding:
    """The output of ``run`` that gives workflow parameter ``parameter`` (as ``return``)."""
    finished = _finished(metadata, run.id)
    rules = (
        lambda s: parameter in s.outputs,
        lambda s: s.step == parameter,
        lambda s: s.step.endswith(f"_{parameter}"),
    )
    for rule in rules:
        found = [s for s in finished if rule(s)]
        if not found:
            continue
        chosen = found[-1]
        if parameter in chosen.outputs:
            return Binding(chosen, {"return": chosen.outputs[parameter]}, same_call=False)
        if len(chosen.outputs) == 1:
            return Binding(chosen, {"return": next(iter(chosen.outputs.values()))}, same_call=False)
        raise PartialRunError(
            f"Run {run.id}: step {chosen.name} has outputs {', '.join(chosen.outputs)}; none is "
            f"named {parameter!r}, so it cannot give parameter {parameter!r}.\n"
            f"Hint: name the output {parameter!r} with @qf.step(outputs=(...))."
        )
    outputs = [s.step if list(s.outputs) == ["return"] else s.name for s in finished]
    raise PartialRunError(
        f"Run {run.id} ({run.workflow}) has no output for parameter {parameter!r}: no output "
        f"or step is named {parameter!r} or '*_{parameter}'. Its steps are "
        f"{', '.join(sorted(set(outputs))) or '(none finished)'}."
        f"{did_you_mean(parameter, outputs)}\n"
        f"Hint: pick the run that made it, or give the value: {parameter}=VALUE."
    )


def latest_run_with(metadata: MetadataStore, graph: Graph, wanted: Collection[str]) -> Run:
    """The newest run of the workflow in which every call in ``wanted`` finished."""
    for run in metadata.list_runs(workflow=graph.workflow, limit=50):
        try:
            bind_calls(metadata, run, graph, wanted)
        except PartialRunError:
            continue
        return run
    raise PartialRunError(
        f"No run of {graph.workflow!r} has finished {', '.join(sorted(wanted))}, which the "
        "chosen steps need.\nHint: run the whole workflow once, or pass --from RUN."
    )


def plan(
    metadata: MetadataStore,
    traced: TracedWorkflow,
    *,
    from_run: str | None,
    from_steps: Sequence[str] = (),
    to_steps: Sequence[str] = (),
    inputs: Mapping[str, str] | None = None,
) -> Plan:
    """What to run and what to take from the earlier run. ``inputs`` maps the calls standing
    for workflow parameters (``0_model_input_table``) to the parameter names."""
    graph = traced.graph
    run = resolve_run(metadata, from_run) if from_run else None
    keep = select(graph, from_steps, to_steps) if (from_steps or to_steps) else None
    inputs = dict(inputs or {})
    keep = set(graph.by_name) if keep is None else keep
    keep -= set(inputs)
    needed = {e.source for e in graph.edges if e.target in keep and e.source not in keep}
    calls = needed - set(inputs)
    if run is not None and not needed and not (from_steps or to_steps):
        raise PartialRunError(
            f"--from {from_run}: workflow {graph.workflow!r} takes nothing from another run: "
            "every parameter has a value and no steps are left out.\n"
            "Hint: add --from-steps STEP to run from STEP on, with the rest taken from the run."
        )
    if calls and run is None:
        run = latest_run_with(metadata, graph, calls)
    bound: dict[str, Binding] = {}
    if run is not None:
        bound.update(bind_calls(metadata, run, graph, calls))
        for name in needed & set(inputs):
            bound[name] = output_for(metadata, run, inputs[name])
    return Plan(subgraph(traced, keep | needed), bound, run.id if run and bound else None)
