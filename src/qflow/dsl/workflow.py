"""``@qf.workflow``: a Python function whose step calls are traced into a graph."""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Any, Generic, ParamSpec, TypeVar

from qflow.config.signature import (
    check_parameters,
    parameter_types,
    signature_defaults,
    with_defaults,
)
from qflow.config.tree import Config, to_config
from qflow.dsl.tracing import (
    NamedOutputs,
    StepOutput,
    TraceContext,
    TracedWorkflow,
    current_trace,
    misuse_from,
)
from qflow.errors import ConfigError, QFlowError, WorkflowReturnError, did_you_mean
from qflow.graph.model import Graph
from qflow.graph.validate import validate

P = ParamSpec("P")
R = TypeVar("R")

CONFIG_PARAMETER_NAMES = ("cfg", "config")
FRAMEWORK_KEYS = frozenset({"tracker", "executor", "sweep", "hydra"})
"""Config keys QFlow itself reads; they are not bound to workflow parameters."""


def _check_result(value: Any, workflow: str) -> None:
    if value is None or isinstance(value, StepOutput | NamedOutputs):
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_result(item, workflow)
        return
    if isinstance(value, dict):
        for item in value.values():
            _check_result(item, workflow)
        return
    raise WorkflowReturnError(
        f"Workflow {workflow!r} returned {value!r} (a {type(value).__name__}). A workflow may "
        "only return step outputs, or lists, tuples and dicts of them, or nothing.\n"
        "Hint: compute the value in a step and return that step's output."
    )


class Workflow(Generic[P, R]):
    """A traced workflow. ``trace(config)`` turns it into a graph; calling it inside another
    workflow inlines its steps; calling it anywhere else runs it as plain Python."""

    def __init__(self, fn: Callable[P, R], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<workflow {self.name}{self.signature}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        # Mappings (a slice of the caller's config) arrive as ``Config``, as under qflow run.
        call: Callable[..., R] = self.fn
        args_ = [to_config(a) if isinstance(a, Mapping) else a for a in args]
        kwargs_ = {k: to_config(v) if isinstance(v, Mapping) else v for k, v in kwargs.items()}
        trace = current_trace.get()
        if trace is None:
            return call(*args_, **kwargs_)
        trace.groups.append(self.name)
        try:
            return call(*args_, **kwargs_)
        finally:
            trace.groups.pop()

    @property
    def takes_config_object(self) -> bool:
        params = list(self.signature.parameters)
        return len(params) == 1 and params[0] in CONFIG_PARAMETER_NAMES

    def defaults(self) -> dict[str, Any]:
        """The config a run gets without a config file or overrides: the parameters'
        defaults (``{}`` for a workflow that takes the whole config as ``cfg``)."""
        if self.takes_config_object:
            return {}
        return signature_defaults(self.signature)

    def config_arguments(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments the function is called with for ``config``: a ``Config``
        (attribute and item access) for a ``cfg`` parameter; else each key bound to its
        parameter, checked against the parameter's annotation (or its default's type),
        with mappings as ``Config``."""
        if self.takes_config_object:
            return {next(iter(self.signature.parameters)): Config(config)}
        known = self.signature.parameters
        config = {k: v for k, v in config.items() if k not in FRAMEWORK_KEYS or k in known}
        for key in config:
            if key not in known:
                raise ConfigError(
                    f"Workflow {self.name!r} has no parameter {key!r}; "
                    f"its parameters are: {', '.join(known) or '(none)'}."
                    f"{did_you_mean(key, known)}\n"
                    f"Hint: name the function's single parameter 'cfg' to receive the whole "
                    "config instead."
                )
        missing = [
            name
            for name, param in known.items()
            if param.default is inspect.Parameter.empty and name not in config
        ]
        if missing:
            raise ConfigError(
                f"Workflow {self.name!r} needs a value for {', '.join(map(repr, missing))}. "
                f"Hint: qflow run {self.name} {missing[0]}=VALUE"
            )
        config = with_defaults(self.signature, config)
        checked = check_parameters(self.name, parameter_types(self.fn, self.signature), config)
        return {key: to_config(value, key) for key, value in checked.items()}

    def unbound_parameters(self, config: Mapping[str, Any]) -> list[str]:
        """Parameters without a default that ``config`` gives no value (``model_input_table``
        of a workflow fed by another one): ``qflow run --from RUN`` takes them from RUN."""
        if self.takes_config_object:
            return []
        return [
            name
            for name, param in self.signature.parameters.items()
            if param.default is inspect.Parameter.empty and name not in config
        ]

    def trace(
        self, config: Mapping[str, Any] | None = None, *, inputs: Collection[str] = ()
    ) -> TracedWorkflow:
        """Run the function once with ``config``, recording step calls into a graph.

        Each parameter named in ``inputs`` gets the output of a call of its own (a step of
        that name that never runs: the run binds it to an earlier run's output) instead of a
        config value."""
        config = dict(config or {})
        context = TraceContext(self.name)
        token = current_trace.set(context)
        try:
            call: Callable[..., Any] = self.fn
            if inputs:
                checked = copy.copy(self)
                checked.signature = self.signature.replace(
                    parameters=[p for n, p in self.signature.parameters.items() if n not in inputs]
                )
                arguments = checked.config_arguments(config)
                arguments.update({name: _input_handle(context, name) for name in inputs})
            else:
                arguments = self.config_arguments(config)
            result = call(**arguments)
        except (TypeError, ValueError, AttributeError) as exc:
            misuse = None if isinstance(exc, QFlowError) else misuse_from(exc, self.name)
            if misuse is None:
                raise
            raise misuse from exc
        finally:
            current_trace.reset(token)
        _check_result(result, self.name)
        graph = validate(Graph(self.name, tuple(context.nodes), tuple(context.edges)))
        return TracedWorkflow(graph=graph, calls=context.calls, result=result, config=config)


def bound_input() -> Any:
    """The function of a workflow parameter bound to an earlier run's output: the run takes
    the output instead of calling it."""
    raise QFlowError(
        "A workflow parameter taken from an earlier run was run as a step. "
        "Hint: run the workflow with --from RUN."
    )


def _input_handle(context: TraceContext, parameter: str) -> StepOutput:
    from qflow.dsl.step import Step, StepOptions

    step: Step[[], Any] = Step(bound_input, StepOptions(name=parameter, cache=False))
    return StepOutput(context.add(step, {}, ("return",), ""), "return")


def workflow(fn: Callable[P, R] | None = None, /, *, name: str | None = None) -> Any:
    """Mark a function as a workflow. Its single ``cfg`` parameter receives the run's config
    (attribute access, as in Hydra); otherwise config keys bind to parameters by name."""

    def decorate(target: Callable[P, R]) -> Workflow[P, R]:
        return Workflow(target, name=name)

    return decorate(fn) if fn is not None else decorate
