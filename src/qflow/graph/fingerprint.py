"""Content hashes: a step's code fingerprint and the cache key of one step call.

The fingerprint covers the step's normalised source and every piece of the project's own code
it reaches, transitively: functions, classes (with their methods) and module-level values it
reads by name, followed through modules it imports and through closures. Code outside the
project (a module installed under ``site-packages``, or QFlow itself) counts by its
distribution's name and version; the standard library counts through the Python version the
run records. ``code_manifest`` lists those pieces; the fingerprint is the sha256 of the
manifest's JSON, so a stored manifest explains a changed fingerprint piece by piece.

What it cannot see: names looked up dynamically (``getattr(module, name)``, ``eval``), methods
reached only through an instance of a class the step does not name, files and environment
variables the code reads, and code behind a C extension.
"""

from __future__ import annotations

import ast
import dis
import enum
import functools
import hashlib
import importlib.metadata
import inspect
import json
import sys
import textwrap
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FRAMEWORK = __name__.partition(".")[0]
_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_ATTRS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_MISSING = object()
_UNDEFINED = object()
_LITERAL_LIMIT = 10_000


def normalized_source(source: str, *, keep_decorators: bool = False) -> str:
    """Source with comments, blank lines, formatting and docstrings removed.

    Two functions that differ only in those have the same fingerprint, so reformatting code
    does not invalidate the cache. The decorators of the outermost definition are dropped
    unless ``keep_decorators`` (a step's own decorator options are fingerprinted separately);
    decorators of nested definitions always count.
    """
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    if not keep_decorators:
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                node.decorator_list = []
    return ast.unparse(tree)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CodeManifest:
    """What a step's fingerprint covers.

    ``code`` maps a label (``helpers.py:scale()``, ``models.py:Scaler``,
    ``models.py:Scaler.fit()``, ``helpers.py:FACTOR``) to the sha256 of its normalised text
    and ``kinds`` to what it is (function, class, value, module); ``texts`` maps those hashes
    to the texts; ``packages`` maps a distribution to its version; ``options`` holds the
    decorator options that shape outputs; ``step`` is the label of the step's own code.
    """

    step: str
    code: Mapping[str, str]
    kinds: Mapping[str, str]
    packages: Mapping[str, str]
    options: Mapping[str, object]
    texts: Mapping[str, str]

    @functools.cached_property
    def json(self) -> str:
        """Canonical JSON of everything but the texts; its sha256 is the fingerprint."""
        return json.dumps(
            {
                "step": self.step,
                "code": dict(self.code),
                "kinds": dict(self.kinds),
                "packages": dict(self.packages),
                "options": dict(self.options),
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @functools.cached_property
    def fingerprint(self) -> str:
        return sha256_text(self.json)

    @functools.cached_property
    def parsed(self) -> dict[str, Any]:
        """The JSON form as data, as ``manifest_changes`` takes it (also from the store)."""
        return dict(json.loads(self.json))


def describe_piece(label: str, kind: str, step: str) -> str:
    """``helper scale() in helpers.py``, ``method Model.fit() in models.py``, ``class Model in
    models.py``, ``constant FACTOR in helpers.py``, ``module helpers.py``, ``the step's code``."""
    if label == step:
        return "the step's code"
    file, _, name = label.rpartition(":")
    if kind == "module":
        return f"module {file}"
    if kind == "class":
        return f"class {name} in {file}"
    if kind == "value":
        return f"constant {name} in {file}"
    owner = name.removesuffix("()").rpartition(".")[0]
    is_method = bool(owner) and not owner.endswith("<locals>")
    return f"{'method' if is_method else 'helper'} {name} in {file}"


def manifest_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two manifests (``CodeManifest.json`` parsed), one phrase each:
    ``helper scale() in helpers.py changed``, ``package numpy 1.26.4 → 2.0.0``, ..."""
    changes: list[str] = []
    old_code, new_code = old.get("code", {}), new.get("code", {})
    kinds = {**old.get("kinds", {}), **new.get("kinds", {})}
    step = str(new.get("step", ""))
    for label in sorted(old_code.keys() | new_code.keys(), key=lambda k: (k != step, k)):
        what = describe_piece(label, kinds.get(label, "function"), step)
        if label not in old_code:
            changes.append(f"{what} added")
        elif label not in new_code:
            changes.append(f"{what} no longer used")
        elif old_code[label] != new_code[label]:
            changes.append(f"{what} changed")
    old_packages, new_packages = old.get("packages", {}), new.get("packages", {})
    for name in sorted(old_packages.keys() | new_packages.keys()):
        before, after = old_packages.get(name), new_packages.get(name)
        if before != after:
            changes.append(f"package {name} {before or 'not used'} → {after or 'not used'}")
    old_options, new_options = old.get("options", {}), new.get("options", {})
    for name in sorted(old_options.keys() | new_options.keys()):
        before, after = old_options.get(name), new_options.get(name)
        if before != after:
            changes.append(f"{name.replace('_', ' ')} {_option(before)} → {_option(after)}")
    return changes


def _option(value: object) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


# -- where a module comes from ------------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    """``project`` (hash the code), ``package`` (count ``name``==``version``) or ``stdlib``."""

    kind: str
    name: str = ""
    version: str = ""


_ORIGINS: dict[str, _Origin] = {}
_VERSIONS: dict[str, tuple[str, str]] = {}


def distribution_version(top: str, module: object = None) -> tuple[str, str]:
    """(name, version) of an installed top-level package, looked up once per process: the
    distribution of that name, else the package's ``__version__``, else (slow: it reads every
    installed distribution's file list) the distribution that provides it."""
    if top not in _VERSIONS:
        found: tuple[str, str] | None = None
        try:
            found = (top, importlib.metadata.version(top))
        except importlib.metadata.PackageNotFoundError:
            declared = getattr(module, "__version__", None)
            if isinstance(declared, str):
                found = (top, declared)
            else:
                names = _packages_distributions().get(top)
                found = (names[0], importlib.metadata.version(names[0])) if names else None
        _VERSIONS[top] = found or (top, "unknown")
    return _VERSIONS[top]


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _installed(path: str) -> bool:
    return any(part in ("site-packages", "dist-packages") for part in Path(path).parts)


def module_origin(name: str) -> _Origin:
    """Where module ``name`` comes from: the project, an installed package or the stdlib."""
    origin = _ORIGINS.get(name)
    if origin is not None:
        return origin
    top = name.partition(".")[0]
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if top in sys.stdlib_module_names or (file is None and name != "__main__"):
        origin = _Origin("stdlib")
    elif top == _FRAMEWORK or (file is not None and _installed(file)):
        origin = _Origin("package", *distribution_version(top, sys.modules.get(top)))
    else:
        origin = _Origin("project")
    _ORIGINS[name] = origin
    return origin


def _module_file(name: str) -> str:
    """A project module's file as shown in labels: its path from the import root."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None) or name
    if name == "__main__":
        return Path(file).name
    stem = name.replace(".", "/")
    return f"{stem}/__init__.py" if Path(file).name == "__init__.py" else f"{stem}.py"


# -- what a piece of code refers to -------------------------------------------------------


def _literal(value: object, budget: list[int]) -> str | None:
    """A canonical text for plain data (sets sorted), or None when ``value`` is not plain."""
    budget[0] -= 1
    if budget[0] < 0:
        return None
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return repr(value)
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, list | tuple):
        items = [_literal(v, budget) for v in value]
        if any(i is None for i in items):
            return None
        inner = ", ".join(i for i in items if i is not None)
        return f"[{inner}]" if isinstance(value, list) else f"({inner},)"
    if isinstance(value, set | frozenset):
        items = [_literal(v, budget) for v in value]
        if any(i is None for i in items):
            return None
        return "{" + ", ".join(sorted(i for i in items if i is not None)) + "}"
    if isinstance(value, dict):
        pairs = [(_literal(k, budget), _literal(v, budget)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


def plain_text(value: object) -> str | None:
    """``repr``-like canonical text of plain data (None for anything else or too large)."""
    return _literal(value, [_LITERAL_LIMIT])


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _imported(name: str, level: int, package: str | None) -> object:
    if level:
        base = (package or "").rsplit(".", level - 1)[0]
        name = f"{base}.{name}" if name else base
    return sys.modules.get(name, _MISSING)


def referenced_names(
    code: types.CodeType, namespace: Mapping[str, object]
) -> Iterator[tuple[str, str, object]]:
    """``(module, name, object)`` for every global a code object (and the code nested in it)
    loads, following attribute chains through modules (``helpers.scale`` is ``scale`` of
    module ``helpers``) and the modules and names it imports when it runs."""
    builtins_ = namespace.get("__builtins__", {})
    builtin_names = builtins_ if isinstance(builtins_, dict) else vars(builtins_)
    package = namespace.get("__package__")
    here = str(namespace.get("__name__") or "__main__")
    for each in _code_objects(code):
        owner, name, value = here, "", _MISSING
        consumed = False
        level = 0
        for ins in dis.get_instructions(each):
            op = ins.opname
            if op in _ATTRS and isinstance(value, types.ModuleType):
                found = getattr(value, str(ins.argval), _MISSING)
                if found is not _MISSING:
                    owner, name, value = value.__name__, str(ins.argval), found
                    continue
            if op == "IMPORT_FROM" and isinstance(value, types.ModuleType):
                found = getattr(value, str(ins.argval), _MISSING)
                if found is not _MISSING:
                    yield value.__name__, str(ins.argval), found
                consumed = True
                continue
            if value is not _MISSING and not consumed:
                yield owner, name, value
            owner, name, value, consumed = here, "", _MISSING, False
            if op in _LOADS:
                name = str(ins.argval)
                value = namespace.get(name, _MISSING)
                if value is _MISSING and name not in builtin_names:
                    value = _UNDEFINED
            elif op == "LOAD_CONST" and isinstance(ins.argval, int):
                level = ins.argval
            elif op == "IMPORT_NAME":
                value = _imported(
                    str(ins.argval), level, package if isinstance(package, str) else None
                )
        if value is not _MISSING and not consumed:
            yield owner, name, value


# -- the pieces of one object -------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """One object's own code pieces, the packages it counts and the objects it refers to."""

    pieces: tuple[tuple[str, str, str], ...] = ()
    packages: tuple[tuple[str, str], ...] = ()
    refs: tuple[object, ...] = ()


_EMPTY = _Node()
_NODES: dict[int, tuple[object, _Node]] = {}
_MANIFESTS: dict[int, tuple[object, str, CodeManifest]] = {}
_CODE_TYPES = (
    types.ModuleType,
    types.FunctionType,
    type,
    types.MethodType,
    types.BuiltinFunctionType,
    functools.partial,
)


def _source(obj: object) -> str | None:
    try:
        return inspect.getsource(obj)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return None


_NAMELESS_FILES = ("<string>", "<stdin>")
"""Code compiled from these "files" (``exec(text)``, ``python -``) shares one name, so
``linecache`` may hold another text under it: such code is fingerprinted by its bytecode."""


def _code_text(fn: types.FunctionType, keep_decorators: bool) -> str:
    """Normalised source, or (no trustworthy source: built by ``exec``) the name and the
    bytecode."""
    nameless = fn.__code__.co_filename in _NAMELESS_FILES
    source = None if nameless else _source(fn)
    if source is not None:
        return normalized_source(source, keep_decorators=keep_decorators)
    lines = [fn.__qualname__]
    for code in _code_objects(fn.__code__):
        constants = [repr(c) for c in code.co_consts if not isinstance(c, types.CodeType)]
        lines.append(f"{code.co_code.hex()} {constants} {code.co_names}")
    return "\n".join(lines)


def _function_node(fn: types.FunctionType, root: bool) -> _Node:
    # A function made by exec() without a module name belongs to no installed package: it
    # is user code wherever ``__main__`` happens to live (``python -m pytest`` puts it in
    # site-packages).
    module = fn.__module__ or "<exec>"
    origin = module_origin(module) if fn.__module__ else _Origin("project")
    if origin.kind != "project":
        return _package_node(origin)
    text = _code_text(fn, keep_decorators=not root)
    refs: list[object] = []
    extra: list[str] = []
    pieces: list[tuple[str, str, str]] = []
    for owner, name, value in referenced_names(fn.__code__, fn.__globals__):
        refs.extend(_global_refs(owner, name, value, pieces))
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell: a name assigned later in the enclosing function
            continue
        literal = plain_text(content)
        if literal is None:
            refs.append(content)
        else:
            extra.append(f"# closure {name} = {literal}")
    for default in (*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()):
        literal = plain_text(default)
        if literal is None:
            refs.append(default)
        else:
            extra.append(f"# default {literal}")
    label = f"{_module_file(module)}:{fn.__qualname__}()"
    pieces.append((label, "function", "\n".join([text, *extra])))
    return _Node(tuple(pieces), (), tuple(refs))


def _global_refs(
    module: str, name: str, value: object, pieces: list[tuple[str, str, str]]
) -> list[object]:
    """The objects to follow for one global name; values become pieces of their own."""
    if isinstance(value, _CODE_TYPES):
        return [value]
    if module_origin(module).kind != "project":
        return [type(value)]
    while name in _definitions(module).imported:  # ``from helpers import FACTOR``
        module, name = _definitions(module).imported[name]
        if module_origin(module).kind != "project":
            return [type(value)]
    label = f"{_module_file(module)}:{name}"
    if value is _UNDEFINED:  # not defined (yet): it counts once it is
        pieces.append((label, "value", f"{name}: undefined"))
        return []
    literal = plain_text(value)
    if literal is not None:
        pieces.append((label, "value", f"{name} = {literal}"))
        return [type(value)] if isinstance(value, enum.Enum) else []
    statement = _definitions(module).assigned.get(name)
    described = f"{name}: {type(value).__module__}.{type(value).__qualname__}"
    pieces.append((label, "value", statement or described))
    wrapped = getattr(value, "__wrapped__", None)
    return [type(value)] if wrapped is None else [type(value), wrapped]


@dataclass(frozen=True)
class _Definitions:
    """A project module's top-level ``NAME = ...`` statements (normalised) and the names it
    imports from other modules (name → (module, name there))."""

    assigned: Mapping[str, str]
    imported: Mapping[str, tuple[str, str]]


@functools.cache
def _definitions(module: str) -> _Definitions:
    found = sys.modules.get(module)
    source = _source(found) if found is not None else None
    try:
        tree = ast.parse(source or "")
    except SyntaxError:
        tree = ast.Module([], [])
    assigned: dict[str, str] = {}
    imported: dict[str, tuple[str, str]] = {}
    package = str(getattr(found, "__package__", None) or "")
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            origin = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                origin = f"{base}.{origin}".strip(".")
            for alias in node.names:
                if origin != module:
                    imported[alias.asname or alias.name] = (origin, alias.name)
            continue
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    text = ast.unparse(node)
                    assigned[name.id] = (
                        f"{assigned[name.id]}\n{text}" if name.id in assigned else text
                    )
                    imported.pop(name.id, None)
    return _Definitions(assigned, imported)


def _class_node(cls: type) -> _Node:
    """A project class: its body with method bodies elided, then each method on its own."""
    origin = module_origin(cls.__module__)
    if origin.kind != "project":
        return _package_node(origin)
    source = _source(cls)
    text = cls.__qualname__
    if source is not None:
        tree = ast.parse(normalized_source(source, keep_decorators=True))
        for definition in tree.body:
            if isinstance(definition, ast.ClassDef):
                for item in definition.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        item.body = [ast.Expr(ast.Constant(Ellipsis))]
        text = ast.unparse(tree)
    refs: list[object] = [base for base in cls.__bases__ if base is not object]
    for attribute in vars(cls).values():
        for candidate in (
            attribute,
            getattr(attribute, "__func__", None),
            getattr(attribute, "fget", None),
            getattr(attribute, "fset", None),
        ):
            if isinstance(candidate, types.FunctionType | type):
                refs.append(candidate)
    label = f"{_module_file(cls.__module__)}:{cls.__qualname__}"
    return _Node(((label, "class", text),), (), tuple(refs))


def _package_node(origin: _Origin) -> _Node:
    if origin.kind == "package":
        return _Node((), ((origin.name, origin.version),), ())
    return _EMPTY


def _module_node(module: types.ModuleType) -> _Node:
    """A module used as a value (not through its attributes): all of a project module's code."""
    origin = module_origin(module.__name__)
    if origin.kind != "project":
        return _package_node(origin)
    source = _source(module)
    text = normalized_source(source, keep_decorators=True) if source else module.__name__
    return _Node(((f"{_module_file(module.__name__)}:*", "module", text),))


def _node(obj: object, root: bool = False) -> _Node:
    """The pieces of one object, computed once per process."""
    cached = _NODES.get(id(obj))
    if cached is not None and cached[0] is obj and not root:
        return cached[1]
    node: _Node
    if isinstance(obj, types.FunctionType):
        node = _function_node(obj, root)
    elif isinstance(obj, type):
        node = _class_node(obj)
    elif isinstance(obj, types.ModuleType):
        node = _module_node(obj)
    elif isinstance(obj, types.MethodType):
        node = _Node(refs=(obj.__func__, obj.__self__))
    elif isinstance(obj, functools.partial):
        node = _Node(refs=(obj.func, *obj.args, *obj.keywords.values()))
    elif isinstance(obj, types.BuiltinFunctionType):
        module = getattr(obj, "__module__", None)
        node = _package_node(module_origin(module)) if module else _EMPTY
    else:
        wrapped = getattr(obj, "__wrapped__", None)
        node = _Node(refs=(type(obj),) if wrapped is None else (type(obj), wrapped))
    if not root:
        _NODES[id(obj)] = (obj, node)
    return node


def code_manifest(root: object, options: Mapping[str, object]) -> CodeManifest:
    """The pieces of project code ``root`` (a step's function or class) reaches, the packages
    it uses and the given decorator ``options``; memoised per object for the process."""
    key = json.dumps(dict(options), sort_keys=True, default=repr)
    cached = _MANIFESTS.get(id(root))
    if cached is not None and cached[0] is root and cached[1] == key:
        return cached[2]
    code: dict[str, str] = {}
    kinds: dict[str, str] = {}
    texts: dict[str, str] = {}
    packages: dict[str, str] = {}
    seen: set[int] = set()
    stack: list[tuple[object, bool]] = [(root, True)]
    step_label = ""
    while stack:
        obj, is_root = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        node = _node(obj, root=is_root)
        for label, kind, text in node.pieces:
            digest = sha256_text(text)
            code[label] = digest
            kinds[label] = kind
            texts[digest] = text
        if is_root and node.pieces:
            step_label = node.pieces[-1][0]
        packages.update(node.packages)
        stack.extend((ref, False) for ref in node.refs)
    manifest = CodeManifest(step_label, code, kinds, packages, dict(options), texts)
    _MANIFESTS[id(root)] = (root, key, manifest)
    return manifest


def cache_key(fingerprint: str, inputs: Mapping[str, str], params: Mapping[str, str]) -> str:
    """Key of one step call: code fingerprint, input artifact hashes and canonical params."""
    payload = json.dumps(
        {"code": fingerprint, "inputs": dict(inputs), "params": dict(params)}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()
