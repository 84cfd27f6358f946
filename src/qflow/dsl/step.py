"""``@qf.step``: a plain function (or a class with ``__call__``) that QFlow can trace and run."""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload

from qflow.config.tree import to_plain
from qflow.dsl.tracing import (
    NamedOutputs,
    StepOutput,
    StepOutputs,
    current_trace,
    running_step,
    user_location,
)
from qflow.errors import NestedStepError, StepSignatureError, TraceError, did_you_mean
from qflow.graph.validate import check_call_name

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True)
class StepOptions:
    """How a step runs and is cached. Defaults fit a deterministic, quick step."""

    name: str | None = None
    version: str | None = None
    outputs: tuple[str, ...] | None = None
    cache: bool = True
    retries: int = 0
    retry_delay: float = 0.0
    timeout: float | str | None = None
    catch: bool = False
    resources: Mapping[str, float] = field(default_factory=dict)
    image: str | None = None
    """Run the step's command in this container image: the function returns the argv."""
    env: Mapping[str, Any] | None = None
    """Run the step in its own Python environment, e.g. ``{"pip": ["scikit-learn==1.5.2"]}``."""


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: float | str | None) -> float | None:
    """Seconds from ``30``, ``"30s"``, ``"10m"``, ``"2h"`` or ``"500ms"``."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        for unit in ("ms", "s", "m", "h"):
            number = text.removesuffix(unit)
            if number != text:
                try:
                    seconds = float(number) * _UNITS[unit]
                except ValueError:
                    break
                if seconds > 0:
                    return seconds
    raise TraceError(
        f"Timeout {value!r} is not a duration. Use seconds (30) or a string such as "
        "'30s', '10m', '2h' or '500ms'."
    )


def _caller_location(depth: int) -> str:
    frame = sys._getframe(depth)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _tuple_arity(fn: Callable[..., Any]) -> int | None:
    """Number of outputs when the return annotation is ``tuple[A, B, ...]``."""
    try:
        annotation = typing.get_type_hints(fn).get("return")
    except Exception:
        annotation = inspect.signature(fn).return_annotation
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if args and args[-1] is not Ellipsis:
            return len(args)
    return None


class Step(Generic[P, R]):
    """A step: called outside a workflow it is the plain function; inside, it is traced."""

    def __init__(
        self,
        fn: Callable[P, R],
        options: StepOptions | None = None,
        *,
        source_of: object | None = None,
        fixed_params: Mapping[str, Any] | None = None,
        call_depth: int = 2,
    ) -> None:
        self.fn = fn
        self.options = options or StepOptions()
        self.name: str = self.options.name or str(getattr(fn, "__name__", type(fn).__name__))
        self.fixed_params = dict(fixed_params or {})
        self.call_name: str | None = None
        """The name calls of this step get in a workflow (``named``), else None: numbered."""
        self._source_of = source_of or fn
        self._call_depth = call_depth
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    @functools.cached_property
    def outputs(self) -> tuple[str, ...]:
        if self.options.outputs:
            return tuple(self.options.outputs)
        arity = _tuple_arity(self.fn)
        return tuple(str(i) for i in range(arity)) if arity else ("return",)

    @property
    def code_root(self) -> object:
        """Where the step's code fingerprint starts: its function, or a class step's class."""
        return self._source_of

    @functools.cached_property
    def source(self) -> str:
        try:
            return inspect.getsource(self._source_of)  # type: ignore[arg-type]
        except (OSError, TypeError):
            return getattr(self.fn, "__qualname__", self.name)

    def __repr__(self) -> str:
        named = f" named {self.call_name!r}" if self.call_name else ""
        return f"<step {self.name}{self.signature}{named}>"

    def named(self, name: str) -> Step[P, R]:
        """This step, with ``name`` as the name of its call: ``fit.named("train_a")(X, y)``
        or ``fit.named("folds").map(...)``.

        A call is otherwise named by its position (``3_fit``), which changes when calls are
        added or reordered. A given name is the call's run name and its stable key:
        ``qflow diff`` pairs the calls of two runs by it, ``--from-steps``/``--to-steps``,
        ``--rerun``, ``qflow logs RUN train_a`` and the dashboard take it, and the "why it
        ran" reason compares the call with the earlier call of that name. Names must be unique
        in a run, differ from every step's name, start with a letter and hold only letters,
        digits, ``_`` and ``-``. It is a method, not a ``name=`` keyword of the call, so a step
        may still have a parameter called ``name``. Outside a workflow the name is ignored
        and the call runs the function."""
        renamed = copy.copy(self)
        renamed.call_name = check_call_name(name, _caller_location(2))
        return renamed

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        trace = current_trace.get()
        if trace is None:
            if running_step.get() is not None:
                raise NestedStepError(
                    f"Step {self.name!r} was called inside running step "
                    f"{running_step.get()!r}. Steps cannot call steps when they run.\n"
                    f"Hint: call both from the workflow, or call {self.name}.fn(...) "
                    "to run it as a plain function."
                )
            return self.fn(*args, **kwargs)
        location = _caller_location(self._call_depth)
        arguments = self.bind(args, kwargs, location)
        arguments = {**self.fixed_params, **arguments}
        name = trace.add(self, arguments, self.outputs, location, call_name=self.call_name)
        handles = tuple(StepOutput(name, output) for output in self.outputs)
        if self.options.outputs:
            return NamedOutputs(handles)  # type: ignore[return-value]
        if self.outputs == ("return",):
            return handles[0]  # type: ignore[return-value]
        return StepOutputs(handles)  # type: ignore[return-value]

    def map(self, items: Any, /, *, max_parallel: int | None = None, **shared: Any) -> Any:
        """Call the step once per item of ``items`` (a list, or a step output that will be one)
        when the workflow runs; the items go to the step's first parameter not in ``shared``.

        Returns a placeholder for the list of results, in item order. With ``catch=True`` a
        failed item becomes a ``qf.Failed`` in that list instead of failing the run.
        """
        trace = current_trace.get()
        if trace is None:
            return [self(item, **shared) for item in items]
        location = _caller_location(2)
        free = [p for p in self.signature.parameters if p not in shared]
        if not free:
            raise StepSignatureError(
                f"Step {self.name!r} cannot be mapped: every parameter is given in the "
                f"shared arguments ({', '.join(shared)}).\n  at {location}"
            )
        if max_parallel is not None and max_parallel < 1:
            raise StepSignatureError(
                f"Step {self.name!r}: max_parallel must be at least 1, got {max_parallel}."
            )
        arguments = self.bind((items,), shared, location)
        name = trace.add(
            self,
            arguments,
            self.outputs,
            location,
            map_over=free[0],
            max_parallel=max_parallel,
            call_name=self.call_name,
        )
        handles = tuple(StepOutput(name, output) for output in self.outputs)
        if self.options.outputs:
            return NamedOutputs(handles)
        return handles[0] if self.outputs == ("return",) else StepOutputs(handles)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any], location: str) -> dict[str, Any]:
        """Bind call arguments to the signature, with defaults, or explain what is wrong."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            hint = ""
            known = list(self.signature.parameters)
            for key in kwargs:
                if key not in known:
                    hint = did_you_mean(key, known)
            raise StepSignatureError(
                f"Step {self.name!r} cannot be called with these arguments: {exc}.\n"
                f"Expected: {self.name}{self.signature}{hint}\n  at {location}"
            ) from None
        bound.apply_defaults()
        return {key: _plain(value) for key, value in bound.arguments.items()}


def _plain(value: Any) -> Any:
    """Config containers (``Config``, OmegaConf's) become plain dicts and lists before they
    reach a step, so a step's arguments and cache key never depend on how they were made."""
    return to_plain(value)


_CALL_NAME = "_qflow_call_name"
"""Where a class step object keeps the name ``named`` gave its call (a private attribute:
not one of the step's parameters)."""


def _fields_need_dataclass(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
    """``__new__`` of a class step with neither ``__init__`` nor ``@dataclass``."""
    if (args or kwargs) and cls.__init__ is object.__init__:
        given = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        fields = ", ".join(getattr(cls, "__annotations__", {})) or "none declared"
        raise StepSignatureError(
            f"Class step {cls.__name__!r} cannot take arguments: {cls.__name__}({given}). "
            f"It has no __init__ and is not a dataclass, so its fields ({fields}) cannot be set."
            f"\nHint: add @dataclass under @qf.step (from dataclasses import dataclass)."
            f"\n  at {user_location() or '?'}"
        )
    return object.__new__(cls)


def _class_step(cls: type[T], options: StepOptions) -> type[T]:
    """Make instances of ``cls`` steps whose fields are the step's parameters."""
    call = cls.__dict__.get("__call__")
    if call is None:
        raise TraceError(
            f"Class {cls.__name__!r} is marked @qf.step but defines no __call__. "
            "Hint: put the step's work in __call__(self, ...) and its parameters in fields."
        )

    def fields_of(instance: Any) -> dict[str, Any]:
        if dataclasses.is_dataclass(instance):
            return {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}
        return {k: v for k, v in vars(instance).items() if not k.startswith("_")}

    @functools.wraps(call)
    def traced_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if current_trace.get() is None:
            return call(self, *args, **kwargs)
        bound_step: Step[..., Any] = Step(
            functools.partial(call, self),
            dataclasses.replace(options, name=options.name or cls.__name__),
            source_of=cls,
            fixed_params=fields_of(self),
            call_depth=3,
        )
        bound_step.__dict__["outputs"] = Step(call, options).outputs
        bound_step.call_name = getattr(self, _CALL_NAME, None)
        return bound_step(*args, **kwargs)

    def named(self: Any, name: str) -> Any:
        """This step object, with ``name`` as the name of its call:
        ``FitModel(C=0.5).named("train_a")(X, y)`` (see ``Step.named``)."""
        renamed = copy.copy(self)
        object.__setattr__(renamed, _CALL_NAME, check_call_name(name, _caller_location(2)))
        return renamed

    setattr(cls, "__call__", traced_call)  # noqa: B010
    if not hasattr(cls, "named"):  # a class's own ``named`` stays its own
        setattr(cls, "named", named)  # noqa: B010
    if cls.__new__ is object.__new__ and cls.__init__ is object.__init__:
        # Checked when an instance is made, so ``@dataclass`` may sit above ``@qf.step`` too.
        cls.__new__ = _fields_need_dataclass  # type: ignore[method-assign]
    cls.__qflow_step__ = options  # type: ignore[attr-defined]
    return cls


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...


@overload
def step(
    *,
    name: str | None = None,
    version: str | None = None,
    outputs: tuple[str, ...] | list[str] | None = None,
    cache: bool = True,
    retries: int = 0,
    retry_delay: float = 0.0,
    timeout: float | str | None = None,
    catch: bool = False,
    resources: Mapping[str, float] | None = None,
    image: str | None = None,
    env: Mapping[str, Any] | None = None,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(fn: Any = None, /, **options: Any) -> Any:
    """Mark a function (or a class with ``__call__``) as a workflow step.

    Use it bare (``@qf.step``) or with options (``@qf.step(retries=2, outputs=("a", "b"))``).
    ``image=`` runs the command the function returns in a container; ``env={"pip": [...]}``
    runs the function in its own cached virtual environment.
    Called outside a workflow the step is the plain function, so it is unit-testable as is.
    Inside a workflow the call returns a placeholder for its future output(s); its run name is
    its position (``3_fit``), or a name of its own given with ``fit.named("train_a")(...)``,
    which ``qflow diff``, ``--from-steps`` and the dashboard then use as its identity.
    """
    if options.get("outputs") is not None:
        options["outputs"] = tuple(options["outputs"])
    if options.get("resources") is None:
        options.pop("resources", None)
    if options.get("timeout") is not None:
        options["timeout"] = parse_duration(options["timeout"])
    opts = StepOptions(**options)

    def decorate(target: Any) -> Any:
        if isinstance(target, type):
            return _class_step(target, opts)
        if not callable(target):
            raise TraceError(f"@qf.step needs a function or class, got {target!r}.")
        return Step(target, opts)

    return decorate(fn) if fn is not None else decorate
