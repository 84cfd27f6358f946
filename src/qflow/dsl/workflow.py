"""``@qf.workflow``: a Python function whose step calls are traced into a graph."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Generic, ParamSpec, TypeVar

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
        trace = current_trace.get()
        if trace is None:
            return self.fn(*args, **kwargs)
        trace.groups.append(self.name)
        try:
            return self.fn(*args, **kwargs)
        finally:
            trace.groups.pop()

    @property
    def takes_config_object(self) -> bool:
        params = list(self.signature.parameters)
        return len(params) == 1 and params[0] in CONFIG_PARAMETER_NAMES

    def config_arguments(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments the function is called with for ``config``."""
        if self.takes_config_object:
            from omegaconf import OmegaConf

            return {next(iter(self.signature.parameters)): OmegaConf.create(dict(config))}
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
        return dict(config)

    def trace(self, config: Mapping[str, Any] | None = None) -> TracedWorkflow:
        """Run the function once with ``config``, recording step calls into a graph."""
        config = dict(config or {})
        context = TraceContext(self.name)
        token = current_trace.set(context)
        try:
            call: Callable[..., Any] = self.fn
            result = call(**self.config_arguments(config))
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


def workflow(fn: Callable[P, R] | None = None, /, *, name: str | None = None) -> Any:
    """Mark a function as a workflow. Its single ``cfg`` parameter receives the run's config
    (attribute access, as in Hydra); otherwise config keys bind to parameters by name."""

    def decorate(target: Callable[P, R]) -> Workflow[P, R]:
        return Workflow(target, name=name)

    return decorate(fn) if fn is not None else decorate
