"""Trace scope and the placeholders a step call returns while a workflow is traced."""

from __future__ import annotations

import dis
import json
import sys
import sysconfig
import typing
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from qflow.errors import HandleMisuseError, TraceError
from qflow.graph.model import Edge, EdgeKind, Graph, Node, NodeKind

if TYPE_CHECKING:
    from qflow.dsl.step import Step

current_trace: ContextVar[TraceContext | None] = ContextVar("qflow_trace", default=None)
running_step: ContextVar[str | None] = ContextVar("qflow_running_step", default=None)

_HINT = (
    "Hint: a step's result only exists when the workflow runs. Pass it to another step, "
    "or decide on config values instead."
)
_QFLOW_DIR = str(Path(__file__).resolve().parent.parent)
_STDLIB_DIRS = tuple({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]} - {""})
_UNPACK_SEQUENCE = dis.opmap["UNPACK_SEQUENCE"]
_UNPACK_EX = dis.opmap["UNPACK_EX"]
_EXTENDED_ARG = dis.opmap["EXTENDED_ARG"]


def _is_user_code(filename: str) -> bool:
    if filename.startswith(("<frozen", _QFLOW_DIR)):
        return False
    return not any(
        filename.startswith(folder) and "site-packages" not in filename for folder in _STDLIB_DIRS
    )


def user_location() -> str:
    """``file:line`` of the innermost user code calling QFlow right now, or ``""``."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and not _is_user_code(frame.f_code.co_filename):
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else ""


def traceback_location(tb: TracebackType | None) -> str:
    """``file:line`` of the innermost user code in a traceback, or ``""``."""
    location = ""
    while tb is not None:
        if _is_user_code(tb.tb_frame.f_code.co_filename):
            location = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return location


def misuse_from(exc: BaseException, workflow: str) -> HandleMisuseError | None:
    """A clear error for a builtin exception that a step output caused while ``workflow`` was
    traced (``json.dumps(handle)``, ``pickle.dumps(handle)``...), else None."""
    text = str(exc)
    if not any(name in text for name in ("StepOutput", "NamedOutputs", "<output of step")):
        return None
    return HandleMisuseError(
        f"Workflow {workflow!r} used a step output as a plain value: "
        f"{type(exc).__name__}({text!r}).\n{_HINT}{_at(traceback_location(exc.__traceback__))}"
    )


def _at(location: str) -> str:
    return f"\n  at {location}" if location else ""


def _unpack_target(frame: FrameType | None) -> tuple[int, bool] | None:
    """``(names, starred)`` when ``frame`` is unpacking into names right now
    (``a, b = ...`` or ``a, *rest = ...``), else None."""
    if frame is None:
        return None
    code, lasti = frame.f_code.co_code, frame.f_lasti
    if lasti < 0 or lasti + 1 >= len(code):
        return None
    arg = code[lasti + 1]
    if lasti >= 2 and code[lasti - 2] == _EXTENDED_ARG:
        arg |= code[lasti - 1] << 8
    if code[lasti] == _UNPACK_SEQUENCE:
        return arg, False
    if code[lasti] == _UNPACK_EX:
        return (arg & 0xFF) + (arg >> 8), True
    return None


def _check_unpacking(handles: tuple[StepOutput, ...]) -> None:
    """Raise a clear error when the caller unpacks ``handles`` into the wrong number of names."""
    caller = sys._getframe(2)
    target = _unpack_target(caller)
    if target is None:
        return
    names, starred = target
    count = len(handles)
    if count == names or (starred and count >= names):
        return
    items = list(tuple.__iter__(handles))
    node = items[0].node if items else "?"
    trace = current_trace.get()
    call = trace.calls.get(node) if trace is not None else None
    step = call.step.name if call is not None else node
    outputs = ", ".join(h.output for h in items)
    plural = "output" if count == 1 else "outputs"
    wanted = f"at least {names}" if starred else str(names)
    noun = "name" if count == 1 else "names"
    location = f"{caller.f_code.co_filename}:{caller.f_lineno}"
    hint = _bare_tuple_hint(node, names) or (
        f"Hint: unpack into {count} {noun}, or declare the outputs with "
        "@qf.step(outputs=(...)) or a tuple[...] return annotation."
    )
    raise HandleMisuseError(
        f"Wrong number of names to unpack step {step!r} ({node}) into: {wanted}. "
        f"The step has {count} {plural} ({outputs}).\n{hint}{_at(location)}"
    )


def _bare_tuple_hint(node: str, parts: int | None = None) -> str:
    """For a step annotated ``-> tuple`` (or ``-> list``, ``tuple[X, ...]``): how to make each
    part an output of its own, since such an annotation declares one output; else ``""``."""
    trace = current_trace.get()
    call = trace.calls.get(node) if trace is not None else None
    if call is None or call.step.options.outputs:
        return ""
    fn = call.step.fn
    try:
        annotation = typing.get_type_hints(fn).get("return")
    except Exception:
        annotation = getattr(fn, "__annotations__", {}).get("return")
    origin = typing.get_origin(annotation) or annotation
    args = typing.get_args(annotation)
    if origin not in (tuple, list, "tuple", "list") or (
        origin is tuple and args and ... not in args
    ):
        return ""
    shown = getattr(annotation, "__name__", None) if not args else None
    shown = shown or str(annotation).replace("typing.", "")
    n = parts if parts and parts > 1 else 2
    types_ = ", ".join(["T"] * n)
    names = ", ".join(f'"out{i}"' for i in range(n))
    return (
        f"Step {call.step.name!r} is annotated -> {shown}, which declares one output (the "
        f"whole {shown}). Hint: annotate it -> tuple[{types_}] with one type per output, or "
        f"declare the outputs by name with @qf.step(outputs=({names})); then each part is an "
        "output of its own that other steps can take."
    )


class StepOutput:
    """A future output of a step call, returned while a workflow is being traced.

    It can only be passed to other steps (directly or inside lists, tuples and dicts) or
    returned from the workflow. Anything that needs its value raises ``HandleMisuseError``.
    """

    __slots__ = ("node", "output")

    def __init__(self, node: str, output: str) -> None:
        self.node = node
        self.output = output

    def __repr__(self) -> str:
        suffix = "" if self.output == "return" else f".{self.output}"
        return f"<output of step {self.node}{suffix}>"

    def _misuse(self, action: str) -> NoReturn:
        raise HandleMisuseError(
            f"Cannot {action} {self!r} while tracing the workflow.\n{_HINT}{_at(user_location())}"
        )

    def __bool__(self) -> bool:
        self._misuse("branch on (if/while/and/or)")

    def __iter__(self) -> Iterator[Any]:
        _check_unpacking((self,))
        self._misuse("iterate over or unpack")

    def __len__(self) -> int:
        self._misuse("take len() of")

    def __getitem__(self, key: object) -> Any:
        hint = _bare_tuple_hint(self.node)
        if hint:
            raise HandleMisuseError(
                f"Cannot index [{key!r}] into {self!r} while tracing the workflow.\n{hint}"
                f"{_at(user_location())}"
            )
        self._misuse(f"index [{key!r}] into")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        self._misuse(f"read attribute {name!r} of")

    def __eq__(self, other: object) -> bool:
        self._misuse("compare")

    def __hash__(self) -> int:
        return hash((self.node, self.output))

    def __format__(self, spec: str) -> str:
        self._misuse("format")

    def __array__(self, *args: object, **kwargs: object) -> Any:
        self._misuse("convert to an array")

    def _arith(self, *args: object) -> Any:
        self._misuse("compute with")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _arith
    __truediv__ = __rtruediv__ = __floordiv__ = __pow__ = __mod__ = __neg__ = _arith
    __lt__ = __le__ = __gt__ = __ge__ = __matmul__ = _arith
    __float__ = __int__ = __index__ = __contains__ = _arith


class StepOutputs(tuple[StepOutput, ...]):
    """The outputs of a step with several: unpacking them into the wrong number of names
    raises ``HandleMisuseError`` naming the step, instead of Python's bare ``ValueError``."""

    def __iter__(self) -> Iterator[StepOutput]:
        _check_unpacking(self)
        return tuple.__iter__(self)


class NamedOutputs(StepOutputs):
    """Outputs of a step declared with ``outputs=(...)``: unpack them, or pick one by name."""

    _names: tuple[str, ...]

    def __new__(cls, handles: tuple[StepOutput, ...]) -> NamedOutputs:
        made = super().__new__(cls, handles)
        made._names = tuple(h.output for h in handles)
        return made

    def __getattr__(self, name: str) -> StepOutput:
        if name in self._names:
            handle: StepOutput = self[self._names.index(name)]
            return handle
        raise AttributeError(f"Step outputs are {', '.join(self._names)}; there is no {name!r}.")

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self.__getattr__(key)
        return super().__getitem__(key)


def walk_handles(value: Any, path: str) -> Iterator[tuple[str, StepOutput]]:
    """Every handle inside ``value`` (lists, tuples, dicts), with a readable path to it."""
    if isinstance(value, StepOutput):
        yield path, value
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from walk_handles(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_handles(item, f"{path}[{key!r}]")


def substitute(value: Any, lookup: Callable[[StepOutput], Any]) -> Any:
    """``value`` with each handle replaced by ``lookup(handle)``, keeping the structure."""
    if isinstance(value, StepOutput):
        return lookup(value)
    if isinstance(value, StepOutputs):
        return tuple(lookup(h) for h in tuple.__iter__(value))
    if isinstance(value, list):
        return [substitute(item, lookup) for item in value]
    if isinstance(value, tuple):
        return type(value)(substitute(item, lookup) for item in value)
    if isinstance(value, dict):
        return {key: substitute(item, lookup) for key, item in value.items()}
    return value


def canonical(value: Any) -> str:
    """A stable text form of a constant argument, for cache keys and display."""
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        return repr(value)


@dataclass
class StepCall:
    """A traced call: the step and its bound arguments (constants and handles)."""

    step: Step[..., Any]
    arguments: dict[str, Any]
    params: dict[str, Any]


@dataclass
class TraceContext:
    """Collects the step calls of one workflow trace."""

    workflow: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    calls: dict[str, StepCall] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    conditions: list[StepOutput] = field(default_factory=list)

    def add(
        self,
        step: Step[..., Any],
        arguments: Mapping[str, Any],
        outputs: tuple[str, ...],
        location: str,
        *,
        map_over: str | None = None,
        max_parallel: int | None = None,
        call_name: str | None = None,
    ) -> str:
        """Record a call of ``step``; return its run name: ``call_name`` when the user gave
        one, else its position and the step's name (``3_fit``)."""
        position = len(self.nodes)
        name = call_name or f"{position}_{step.name}"
        params: dict[str, Any] = {}
        for arg, value in arguments.items():
            handles = list(walk_handles(value, arg))
            for path, handle in handles:
                self.edges.append(Edge(handle.node, handle.output, name, path))
            if not handles and arg != map_over:
                params[arg] = value
        for condition in self.conditions:
            self.edges.append(Edge(condition.node, condition.output, name, "", EdgeKind.CONDITION))
        self.nodes.append(
            Node(
                name=name,
                step=step.name,
                position=position,
                outputs=outputs,
                params=tuple((k, canonical(v)) for k, v in params.items()),
                location=location,
                group="/".join(self.groups),
                kind=NodeKind.MAP if map_over else NodeKind.STEP,
                map_over=map_over,
                max_parallel=max_parallel,
                named=call_name is not None,
            )
        )
        self.calls[name] = StepCall(step, dict(arguments), params)
        return name


@dataclass(frozen=True)
class TracedWorkflow:
    """What tracing produced: the graph, each node's call, and the workflow's return value."""

    graph: Graph
    calls: Mapping[str, StepCall]
    result: Any
    config: Mapping[str, Any]


class when:
    """Run the steps called inside the block only if ``condition`` (a step output) is truthy
    when the workflow runs; otherwise they, and what depends on them, are recorded as
    skipped. The condition stays in the graph (drawn as a dashed edge)."""

    def __init__(self, condition: StepOutput) -> None:
        if not isinstance(condition, StepOutput):
            raise TraceError(
                f"qf.when takes a step output, got {type(condition).__name__} {condition!r}. "
                "Hint: for values known at trace time (config), use a plain if statement."
            )
        self.condition = condition

    def __enter__(self) -> StepOutput:
        trace = current_trace.get()
        if trace is None:
            raise TraceError(
                "qf.when only works while a workflow is traced (qf.run, qflow run). "
                "Hint: when calling steps as plain functions, use an if statement."
            )
        trace.conditions.append(self.condition)
        return self.condition

    def __exit__(self, *exc: object) -> None:
        trace = current_trace.get()
        if trace is not None:
            trace.conditions.pop()
