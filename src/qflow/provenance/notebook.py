"""Notebooks into pipelines: convert one into a steps module, or run one as a step.

``convert``: top-level functions become ``@qf.step`` functions; cells tagged ``step`` (or
``step:NAME``) become step functions whose parameters are the names the cell reads from earlier
cells and whose outputs are the names it assigns that later cells read; a cell tagged
``parameters`` gives the defaults of a generated ``@qf.workflow`` that calls the cell steps in
notebook order. Imports are gathered at the top; IPython magics (``%``, ``!``) are dropped.

``notebook_step``: the notebook itself as a step. Its ``parameters`` cell defines the step's
keyword parameters; on a run, the values are injected papermill-style in a cell after it, the
notebook is executed with ``nbclient`` (the ``notebooks`` extra), the executed notebook is logged
as an artifact and returned as the step's output. The cache key follows the notebook's text.
``qf.log_metric``/``log_param``/``set_tag``/``log_artifact``/``log_figure`` calls inside the
notebook are recorded on the step (see ``qflow.provenance.notebook_records``).
"""

from __future__ import annotations

import ast
import builtins
import copy
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import ConfigError, InvalidValueError, MissingExtraError

if TYPE_CHECKING:
    from qflow.dsl.step import Step

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PATH_NAME = re.compile(r"(^|_)(path|file|filename|csv|parquet)$", re.IGNORECASE)
_DATA_SUFFIX = re.compile(
    r"\.(csv|tsv|txt|json|jsonl|parquet|pq|feather|arrow|orc|avro|xlsx?|xml|ya?ml|npy|npz|"
    r"h5|hdf5|pkl|pickle|joblib|pt|pth|onnx|db|sqlite|zip|gz|bz2|xz|tar|png|jpe?g|tiff?|wav)$",
    re.IGNORECASE,
)
_OUTPUT_NAME = re.compile(r"(out|save|dest|target|result|report|export)", re.IGNORECASE)
_BUILTINS = set(dir(builtins))


@dataclass
class Cell:
    index: int
    source: str
    tags: set[str]
    tree: ast.Module


def read_notebook(path: str | Path) -> dict[str, Any]:
    """The notebook's JSON (nbformat 4)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Notebook {str(path)!r} cannot be read: {exc}.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ConfigError(f"Notebook {str(path)!r} has no cells; is it an .ipynb file?")
    return data


def _text(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else str(source or "")


def code_cells(notebook: dict[str, Any]) -> list[Cell]:
    """Code cells with magics removed, parsed."""
    cells = []
    for index, raw in enumerate(notebook["cells"]):
        if raw.get("cell_type") != "code":
            continue
        lines = [
            line
            for line in _text(raw.get("source")).splitlines()
            if not line.lstrip().startswith(("%", "!"))
        ]
        source = "\n".join(lines).strip("\n")
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise InvalidValueError(
                f"Cell {index} of the notebook is not valid Python: {exc.msg} (line "
                f"{exc.lineno}). Hint: fix the cell, or remove it before converting."
            ) from exc
        tags = {str(t) for t in raw.get("metadata", {}).get("tags", [])}
        cells.append(Cell(index, source, tags, tree))
    return cells


def _bound_inside(stmt: ast.stmt) -> set[str]:
    """Names bound by comprehensions and lambdas inside ``stmt`` (not cell variables)."""
    bound: set[str] = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.comprehension):
            bound |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Lambda):
            bound |= {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
    return bound


def _loads(nodes: list[ast.stmt]) -> list[str]:
    """Names read before being assigned in these statements, in source order."""
    assigned: set[str] = set()
    read: list[str] = []
    for stmt in nodes:
        local = _bound_inside(stmt)
        names = sorted(
            (n for n in ast.walk(stmt) if isinstance(n, ast.Name)),
            key=lambda n: (n.lineno, n.col_offset),
        )
        for node in names:
            if (
                isinstance(node.ctx, ast.Load)
                and node.id not in assigned
                and node.id not in local
                and node.id not in read
            ):
                read.append(node.id)
        assigned |= {n.id for n in names if isinstance(n.ctx, ast.Store)} - local
    return read


def _stores(nodes: list[ast.stmt]) -> list[str]:
    names: list[str] = []
    for stmt in nodes:
        local = _bound_inside(stmt)
        for node in ast.walk(stmt):
            if (
                isinstance(node, ast.Name)
                and isinstance(node.ctx, ast.Store)
                and node.id not in names
                and node.id not in local
            ):
                names.append(node.id)
    return names


def _step_name(cell: Cell) -> str:
    for tag in sorted(cell.tags):
        if tag.startswith("step:") and _IDENT.match(tag[5:]):
            return tag[5:]
    first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
    if first.startswith("#"):
        words = re.sub(r"[^A-Za-z0-9_]+", "_", first.lstrip("# ").strip()).strip("_").lower()
        if words and _IDENT.match(words):
            return words[:40]
    return f"cell_{cell.index}"


def _is_step_cell(cell: Cell) -> bool:
    return any(t == "step" or t.startswith("step:") for t in cell.tags)


@dataclass
class Conversion:
    """What ``convert`` wrote."""

    path: Path
    steps: list[str] = field(default_factory=list)
    workflow: str | None = None
    dropped_cells: list[int] = field(default_factory=list)


def _parameters(cells: list[Cell]) -> dict[str, str]:
    params: dict[str, str] = {}
    for cell in cells:
        if "parameters" in cell.tags:
            for stmt in cell.tree.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                    target = stmt.targets[0]
                    if isinstance(target, ast.Name):
                        params[target.id] = ast.unparse(stmt.value)
    return params


def path_parameters(params: dict[str, str]) -> set[str]:
    """Parameters whose default is an input file's path (a string ending in a data file's
    suffix, or named ``*_path``/``*_file``; not names that sound like an
    output: ``out``, ``save``, ``dest``, ``target``, ``result``, ``report``, ``export``): the
    generated steps take them as ``qf.DataFile``, so the file's hash is recorded and is part
    of the cache key."""
    found = set()
    for name, text in params.items():
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            continue
        if not isinstance(value, str) or not value or value.endswith(("/", "\\")):
            continue
        if "://" in value or "\n" in value or _OUTPUT_NAME.search(name):
            continue
        if _PATH_NAME.search(name) or _DATA_SUFFIX.search(value):
            found.add(name)
    return found


def convert(notebook_path: str | Path, output: str | Path, *, force: bool = False) -> Conversion:
    """Write a steps module made from the notebook to ``output``."""
    target = Path(output)
    if target.exists() and not force:
        raise ConfigError(f"{target} exists already. Hint: pass --force to overwrite it.")
    cells = code_cells(read_notebook(notebook_path))
    params = _parameters(cells)
    imports: list[str] = []
    defined: list[str] = []
    functions: list[str] = []
    result = Conversion(target)
    step_cells: list[tuple[Cell, list[ast.stmt]]] = []
    definitions: list[tuple[ast.stmt, str]] = []
    for cell in cells:
        body: list[ast.stmt] = []
        for stmt in cell.tree.body:
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                text = ast.unparse(stmt)
                if text not in imports:
                    imports.append(text)
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                text = ast.get_source_segment(cell.source, stmt) or ast.unparse(stmt)
                definitions.append((stmt, text))
                defined.append(stmt.name)
            else:
                body.append(stmt)
        if "parameters" in cell.tags:
            continue
        if _is_step_cell(cell) and body:
            step_cells.append((cell, body))
        elif body:
            result.dropped_cells.append(cell.index)
    # Functions other code calls stay plain helpers: a step cannot call a step as it runs.
    called = {
        n.id
        for stmt in [*(d for d, _ in definitions), *(b for _, body in step_cells for b in body)]
        for n in ast.walk(stmt)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    for stmt, text in definitions:
        name = getattr(stmt, "name", "")
        if isinstance(stmt, ast.FunctionDef) and not name.startswith("_") and name not in called:
            text = "@qf.step\n" + text
            result.steps.append(name)
        functions.append(text)
    imported = {
        (alias.asname or alias.name).split(".")[0]
        for text in imports
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    known = imported | set(defined) | _BUILTINS
    cell_steps = _cell_steps(step_cells, known, params)
    functions += [text for _, text, _, _ in cell_steps]
    result.steps += [name for name, _, _, _ in cell_steps]
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", Path(notebook_path).stem).strip("_").lower()
    workflow_name = stem if _IDENT.match(stem) else f"notebook_{stem}".rstrip("_")
    while workflow_name in known or workflow_name in result.steps:  # count.ipynb has count()
        workflow_name += "_workflow"
    workflow = _workflow(workflow_name, cell_steps, params)
    if workflow:
        functions.append(workflow)
        result.workflow = workflow_name
    header = [
        f'"""Steps converted from {Path(notebook_path).name} by qflow convert.',
        "",
        "Review the parameters and return values: they were inferred from the cells.",
    ]
    if result.dropped_cells:
        header.append(f"Untagged cells left out: {', '.join(map(str, result.dropped_cells))}.")
    header.append('"""')
    lines = [*header, "", "import qflow as qf"]
    lines += [i for i in imports if i != "import qflow as qf"]
    text = "\n".join(lines) + "\n\n\n" + "\n\n\n".join(functions) + "\n"
    compile(text, str(target), "exec")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return result


def _cell_steps(
    step_cells: list[tuple[Cell, list[ast.stmt]]], known: set[str], params: dict[str, str]
) -> list[tuple[str, str, list[str], list[str]]]:
    """``(name, source, inputs, outputs)`` of each step cell."""
    reads_after: list[set[str]] = []
    for position in range(len(step_cells)):
        later = set()
        for _, body in step_cells[position + 1 :]:
            later |= set(_loads(body))
        reads_after.append(later)
    steps = []
    used_names: set[str] = set()
    for position, (cell, body) in enumerate(step_cells):
        name = _step_name(cell)
        while name in used_names or name in known:
            name += "_step"
        used_names.add(name)
        inputs = [n for n in _loads(body) if n not in known]
        stores = _stores(body)
        outputs = [n for n in stores if n in reads_after[position]]
        if not outputs and stores and position == len(step_cells) - 1:
            outputs = [stores[-1]]
        source = "\n".join(ast.unparse(stmt) for stmt in body)
        indented = "\n".join("    " + line if line else "" for line in source.splitlines())
        decorator = (
            f"@qf.step(outputs=({', '.join(repr(o) for o in outputs)},))"
            if len(outputs) > 1
            else "@qf.step"
        )
        returns = ""
        if len(outputs) == 1:
            returns = f"\n    return {outputs[0]}"
        elif outputs:
            returns = f"\n    return {', '.join(outputs)}"
        paths = path_parameters(params)
        signature = ", ".join(f"{n}: qf.DataFile" if n in paths else n for n in inputs)
        text = f"{decorator}\ndef {name}({signature}):\n{indented}{returns}"
        steps.append((name, text, inputs, outputs))
    return steps


def _workflow(
    name: str, steps: list[tuple[str, str, list[str], list[str]]], params: dict[str, str]
) -> str | None:
    if not steps:
        return None
    signature = ", ".join(f"{k}={v}" for k, v in params.items())
    lines = ["@qf.workflow", f"def {name}({signature}):"]
    last: list[str] = []
    for step, _, inputs, outputs in steps:
        call = f"{step}({', '.join(inputs)})"
        lines.append(f"    {', '.join(outputs)} = {call}" if outputs else f"    {call}")
        last = outputs or last
    lines.append(f"    return {', '.join(last)}" if last else "    return None")
    return "\n".join(lines)


# -- a notebook as a step ----------------------------------------------------------------------


def notebook_parameters(notebook: dict[str, Any]) -> dict[str, Any]:
    """Defaults from the cell tagged ``parameters`` (literal values only)."""
    params: dict[str, Any] = {}
    for cell in code_cells(notebook):
        if "parameters" in cell.tags:
            for stmt in cell.tree.body:
                if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                    try:
                        params[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                    except ValueError:
                        continue
    return params


def inject_parameters(notebook: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy with a cell tagged ``injected-parameters`` after the ``parameters`` cell."""
    result = copy.deepcopy(notebook)
    cells = result["cells"]
    position = next(
        (
            i + 1
            for i, c in enumerate(cells)
            if "parameters" in c.get("metadata", {}).get("tags", [])
        ),
        0,
    )
    source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())
    cells.insert(
        position,
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "injected-parameters",
            "metadata": {"tags": ["injected-parameters"]},
            "outputs": [],
            "source": source,
        },
    )
    return result


class NotebookRunner:
    """Callable behind ``notebook_step``: inject, execute, log, return the executed notebook."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        defaults = notebook_parameters(read_notebook(path))
        self.__signature__ = inspect.Signature(
            [
                inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
                for k, v in defaults.items()
            ]
        )
        self.__name__ = re.sub(r"[^A-Za-z0-9_]+", "_", path.stem)

    def __call__(self, **values: Any) -> dict[str, Any]:
        try:
            import nbformat
            from nbclient import NotebookClient
        except ImportError as exc:
            raise MissingExtraError.for_extra("nbclient", "notebooks") from exc
        import tempfile

        import qflow as qf
        from qflow.provenance.notebook_records import CELL_TAG, Forwarder, shim_cell
        from qflow.runtime.context import current_recorder

        injected = inject_parameters(read_notebook(self.path), values)
        with tempfile.TemporaryDirectory(prefix="qflow-notebook-") as tmp:
            records = Path(tmp) / "records.jsonl"
            injected["cells"].insert(0, shim_cell(records))
            notebook = nbformat.reads(json.dumps(injected), as_version=4)  # type: ignore[no-untyped-call]
            client = NotebookClient(
                notebook,
                timeout=int(self.timeout),
                kernel_name="python3",
                resources={"metadata": {"path": str(self.path.parent)}},
            )
            with Forwarder(records, current_recorder.get()):
                client.execute()
            executed: dict[str, Any] = json.loads(nbformat.writes(notebook))  # type: ignore[no-untyped-call]
            executed["cells"] = [
                c for c in executed["cells"] if CELL_TAG not in c["metadata"].get("tags", [])
            ]
            out = Path(tmp) / self.path.name
            out.write_text(json.dumps(executed, indent=1), encoding="utf-8")
            qf.log_artifact(out, name=self.path.name)
        return executed


def notebook_step(
    path: str | Path, *, name: str | None = None, timeout: float = 600
) -> Step[..., dict[str, Any]]:
    """The notebook at ``path`` as a step whose keyword parameters are its ``parameters``
    cell; its output is the executed notebook (also logged as an artifact)."""
    from qflow.dsl.step import Step, StepOptions

    notebook = Path(path).resolve()
    runner = NotebookRunner(notebook, timeout)
    step: Step[..., dict[str, Any]] = Step(runner, StepOptions(name=name or runner.__name__))
    step.__dict__["source"] = notebook.read_text(encoding="utf-8")
    return step
