"""Lineage: everything an artifact came from, and (forward) everything that used it.

Backward, an artifact is produced by one step run; that step run has parameters, a code
version (fingerprint and source), data files it read and input artifacts, each produced by an
upstream step run of the same run, and so on. Forward, the artifact (or a data file) was read by
step runs of any run; their outputs in turn were read by later steps.

Both directions return plain dicts (``--json``); ``render_tree`` and ``to_mermaid`` draw them.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import ArtifactNotFoundError, did_you_mean

if TYPE_CHECKING:
    from rich.tree import Tree

    from qflow.store.artifacts import ArtifactRef
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import DataFileRecord, StepRun

FORWARD_DEPTH = 6
_HEX = re.compile(r"[0-9a-f]{4,64}")


def split_target(target: str) -> tuple[str, str | None]:
    """``"3_fit.model"`` → ``("3_fit", "model")``; ``"fit"`` → ``("fit", None)``."""
    step, dot, output = target.partition(".")
    return step, (output if dot else None)


def _output(step_run: StepRun, output: str | None) -> tuple[str, ArtifactRef]:
    outputs = step_run.outputs
    if output is None:
        if len(outputs) == 1:
            return next(iter(outputs.items()))
        raise ArtifactNotFoundError(
            f"Step {step_run.name!r} has outputs {', '.join(outputs) or '(none)'}; "
            f"say which one: {step_run.name}.OUTPUT."
        )
    if output not in outputs:
        raise ArtifactNotFoundError(
            f"Step {step_run.name!r} has no output {output!r}; it has "
            f"{', '.join(outputs) or '(none)'}.{did_you_mean(output, outputs)}"
        )
    return output, outputs[output]


def _artifact(name: str, ref: ArtifactRef) -> dict[str, Any]:
    return {
        "name": name,
        "key": ref.key,
        "type": ref.type_name,
        "serializer": ref.serializer,
        "size": ref.size,
        "pickled": ref.pickled,
    }


def _data_file(record: DataFileRecord) -> dict[str, Any]:
    return {"name": record.name, "path": record.path, "sha256": record.sha256, "size": record.size}


def _path_forms(data: str, cwd: Path | None, root: Path | None) -> list[str]:
    """``data`` as given, made absolute from ``cwd`` and from ``root`` (with and without
    symlinks resolved), and relative to ``root``: the forms a step may have recorded."""
    forms = [data]
    given = _expanded(data)
    for base in (cwd, root):
        if base is None:
            continue
        full = given if given.is_absolute() else base / given
        for form in (Path(os.path.normpath(full)), full.resolve()):
            forms.append(str(form))
            if root is not None:
                for top in (root, root.resolve()):
                    if form.is_relative_to(top):
                        forms.append(form.relative_to(top).as_posix())
    return list(dict.fromkeys(forms))


def _expanded(data: str) -> Path:
    """``~`` and ``~user`` expanded; a user that does not exist leaves the path as given."""
    try:
        return Path(data).expanduser()
    except RuntimeError:
        return Path(data)


def _on_disk(data: str, cwd: Path | None, root: Path | None) -> Path | None:
    given = _expanded(data)
    for base in (cwd, root):
        if base is not None:
            full = given if given.is_absolute() else base / given
            if full.is_file():
                return full
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _versions(records: list[DataFileRecord]) -> str:
    runs: dict[str, set[str]] = {}
    for record in records:
        runs.setdefault(record.sha256, set()).add((record.step_name or "/").split("/")[0])
    return ", ".join(
        f"{sha[:12]} ({len(ids)} run{'s' if len(ids) > 1 else ''})" for sha, ids in runs.items()
    )


def data_reads(
    metadata: MetadataStore,
    data: str,
    *,
    cwd: Path | None = None,
    root: Path | None = None,
    disk: bool = True,
) -> list[DataFileRecord]:
    """The reads of one content of a data file, named by path or by sha256 (or a unique
    prefix of at least 4 hex digits).

    A path matches as the step recorded it, or relative to ``cwd`` or to the project
    ``root``. If the file exists there now, the content is the file's current content; if
    not (or with ``disk=False``: the dashboard never reads files a client names), the path
    must have been read with one content only. Errors name the versions found.
    """
    on_disk = _on_disk(data, cwd, root) if disk else None
    if on_disk is None and _HEX.fullmatch(data.lower()):
        records = metadata.data_file_reads(sha256_prefix=data)
        shas = list(dict.fromkeys(r.sha256 for r in records))
        if len(shas) > 1:
            shown = ", ".join(f"{s[:12]} ({r.path})" for s, r in _first_by_sha(records).items())
            raise ArtifactNotFoundError(
                f"Data sha256 prefix {data!r} matches {len(shas)} files: {shown}. "
                "Hint: type more characters of the hash."
            )
        if records:
            return records
    records = metadata.data_file_reads(paths=_path_forms(data, cwd, root))
    if not records:
        raise ArtifactNotFoundError(
            f"No step read a data file with path or sha256 {data!r}. Hint: give the path "
            "relative to this folder or to the project root, or the file's sha256 (a unique "
            "prefix is enough)."
        )
    if on_disk is not None:
        current = _sha256(on_disk)
        chosen = [r for r in records if r.sha256 == current]
        if not chosen:
            raise ArtifactNotFoundError(
                f"No step read {data!r} as it is now (sha256 {current[:12]}); steps read other "
                f"versions: {_versions(records)}. Hint: qflow lineage --data SHA256 for one of "
                "those (a unique prefix is enough)."
            )
        return chosen
    if len({r.sha256 for r in records}) > 1:
        raise ArtifactNotFoundError(
            f"Data file {data!r} was read in several versions: {_versions(records)}. "
            "Hint: qflow lineage --data SHA256 for one of them (a unique prefix is enough)."
        )
    return records


def _first_by_sha(records: list[DataFileRecord]) -> dict[str, DataFileRecord]:
    first: dict[str, DataFileRecord] = {}
    for record in records:
        first.setdefault(record.sha256, record)
    return first


def backward(metadata: MetadataStore, run_id: str, target: str) -> dict[str, Any]:
    """The lineage tree of ``target`` (``STEP`` or ``STEP.OUTPUT``) of run ``run_id``."""
    run = metadata.get_run(run_id)
    step_name, output = split_target(target)
    steps = metadata.step_runs(run.id)
    step_run = metadata.get_step_run(run.id, step_name)
    name, ref = _output(step_run, output)
    producers: dict[str, list[tuple[StepRun, str]]] = {}
    for candidate in steps:
        for out_name, out_ref in candidate.outputs.items():
            producers.setdefault(out_ref.key, []).append((candidate, out_name))
    files: dict[int, list[DataFileRecord]] = {}
    for record in metadata.data_files(run.id):
        files.setdefault(record.step_run_id or -1, []).append(record)
    cached_names: dict[int, str] = {}

    def source_of(step: StepRun) -> dict[str, Any] | None:
        if step.cached_from is None:
            return None
        if step.cached_from not in cached_names:
            found = _step_run_by_id(metadata, step.cached_from)
            cached_names[step.cached_from] = found or "?"
        return {"step_run_id": step.cached_from, "from": cached_names[step.cached_from]}

    made: dict[str, dict[str, Any]] = {}

    def step_node(step: StepRun, seen: frozenset[str]) -> dict[str, Any]:
        # A step upstream of several others (a shared load) is built once: the DAG is walked
        # in linear time, and ``render_tree`` shows it once and refers to it after.
        if step.name not in made:
            made[step.name] = _step_node(step, seen)
        return made[step.name]

    def _step_node(step: StepRun, seen: frozenset[str]) -> dict[str, Any]:
        inputs = []
        for input_name, input_ref in step.inputs.items():
            found = _producer(producers.get(input_ref.key, []), step)
            if found is None:
                node = _artifact(input_name, input_ref)
            else:
                producer, out_name = found
                node = _artifact(f"{producer.name}.{out_name}", input_ref)
                if producer.name not in seen:
                    node["produced_by"] = step_node(producer, seen | {producer.name})
            node["input"] = input_name
            inputs.append(node)
        return {
            "run_id": step.run_id,
            "step": step.name,
            "step_name": step.step,
            "status": step.status,
            "params": step.params,
            "fingerprint": step.fingerprint,
            "source_key": step.source_key,
            "cache_key": step.cache_key,
            "cached_from": source_of(step),
            "data_files": [_data_file(f) for f in files.get(step.id, [])],
            "inputs": inputs,
        }

    root = _artifact(f"{step_run.name}.{name}", ref)
    root["produced_by"] = step_node(step_run, frozenset({step_run.name}))
    return {"run_id": run.id, "workflow": run.workflow, "artifact": root}


def _producer(
    candidates: list[tuple[StepRun, str]], consumer: StepRun
) -> tuple[StepRun, str] | None:
    """The step run upstream of ``consumer`` that wrote the artifact (the closest one)."""
    before = [c for c in candidates if c[0].position < consumer.position]
    return max(before, key=lambda c: c[0].position) if before else None


def _step_run_by_id(metadata: MetadataStore, step_run_id: int) -> str | None:
    """``run_id/step`` of a step run known only by id (the source of a cache hit)."""
    found = metadata.step_run_by_id(step_run_id)
    return None if found is None else f"{found.run_id}/{found.name}"


def forward(
    metadata: MetadataStore,
    *,
    run_id: str | None = None,
    target: str | None = None,
    data: str | None = None,
    cwd: Path | None = None,
    root: Path | None = None,
    disk: bool = True,
) -> dict[str, Any]:
    """Who used an artifact (``run_id`` + ``target``) or a data file (``data``: a path, as
    recorded or relative to ``cwd`` or the project ``root``, or a sha256 or unique prefix of
    one); only the runs that read one content of the file (see ``data_reads``).

    Returns ``{"artifact"|"data_file": ..., "used_by": [{"run_id", "step", "input",
    "outputs": [{"name", "key", "used_by": [...]}]}]}``, following outputs a few levels down.
    """
    seen: set[tuple[str, str]] = set()

    def users(key: str, depth: int) -> list[dict[str, Any]]:
        found = []
        for use_run, step, direction, name in metadata.artifact_uses(key):
            if direction != "in" or (use_run, step) in seen:
                continue
            seen.add((use_run, step))
            found.append(step_use(use_run, step, name, depth))
        return found

    def step_use(use_run: str, step: str, name: str, depth: int) -> dict[str, Any]:
        node: dict[str, Any] = {"run_id": use_run, "step": step, "input": name, "outputs": []}
        if depth < FORWARD_DEPTH:
            step_run = metadata.get_step_run(use_run, step)
            node["status"] = step_run.status
            for out_name, ref in step_run.outputs.items():
                node["outputs"].append(
                    {"name": out_name, "key": ref.key, "used_by": users(ref.key, depth + 1)}
                )
        return node

    if data is not None:
        records = data_reads(metadata, data, cwd=cwd, root=root, disk=disk)
        used_by = []
        for record in records:
            use_run, _, step = (record.step_name or "/").partition("/")
            if (use_run, step) not in seen:
                seen.add((use_run, step))
                used_by.append(step_use(use_run, step, record.name, 1))
        return {"data_file": _data_file(records[0]), "used_by": used_by}
    if run_id is None or target is None:
        raise ArtifactNotFoundError("Say which artifact: RUN STEP[.OUTPUT], or a data file.")
    run = metadata.get_run(run_id)
    step_name, output = split_target(target)
    step_run = metadata.get_step_run(run.id, step_name)
    name, ref = _output(step_run, output)
    seen.add((run.id, step_run.name))
    return {
        "artifact": {"run_id": run.id, **_artifact(f"{step_run.name}.{name}", ref)},
        "used_by": users(ref.key, 1),
    }


# -- drawing -----------------------------------------------------------------------------------


def _short(key: str | None) -> str:
    return (key or "-")[:10]


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def render_tree(lineage: dict[str, Any]) -> Tree:
    """A rich ``Tree`` of a ``backward`` or ``forward`` result."""
    from rich.markup import escape
    from rich.tree import Tree

    def add_artifact(parent: Tree, node: dict[str, Any]) -> None:
        label = (
            f"[bold]{escape(node['name'])}[/] [dim]{_short(node['key'])} {node['type']} "
            f"{node['size']} B{' pickle' if node['pickled'] else ''}[/]"
        )
        branch = parent.add(label)
        step = node.get("produced_by")
        if step is not None:
            add_step(branch, step)

    shown: set[tuple[str, str]] = set()
    """Steps (and, forward, uses) already drawn: a DAG's shared parts are drawn once and
    referred to after, so the tree grows with the number of steps, not of paths."""

    def add_step(parent: Tree, step: dict[str, Any]) -> None:
        extra = f" cached from {step['cached_from']['from']}" if step["cached_from"] else ""
        seen = (step["run_id"], step["step"])
        if seen in shown:
            parent.add(f"← step [cyan]{escape(step['step'])}[/] [dim](shown above)[/]")
            return
        shown.add(seen)
        branch = parent.add(
            f"← step [cyan]{escape(step['step'])}[/] ({step['status']}{extra}) "
            f"[dim]code {_short(step['fingerprint'] or step['source_key'])}[/]"
        )
        if step["params"]:
            branch.add(f"params: {escape(_params(step['params']))}")
        for record in step["data_files"]:
            branch.add(
                f"data file [magenta]{escape(record['path'])}[/] "
                f"[dim]sha256 {_short(record['sha256'])} {record['size']} B[/]"
            )
        for node in step["inputs"]:
            add_artifact(branch, node)

    def add_use(parent: Tree, use: dict[str, Any]) -> None:
        label = (
            f"→ run [bold]{use['run_id']}[/] step [cyan]{escape(use['step'])}[/] "
            f"(as {escape(use['input'])})"
        )
        seen = (use["run_id"], use["step"])
        if seen in shown and use["outputs"]:
            parent.add(f"{label} [dim](shown above)[/]")
            return
        shown.add(seen)
        branch = parent.add(label)
        for out in use["outputs"]:
            sub = branch.add(f"{escape(out['name'])} [dim]{_short(out['key'])}[/]")
            for inner in out["used_by"]:
                add_use(sub, inner)

    if "used_by" in lineage:
        head = lineage.get("artifact") or lineage["data_file"]
        title = escape(str(head.get("name") or head.get("path")))
        digest = _short(head.get("key") or head.get("sha256"))
        tree = Tree(f"[bold]{title}[/] [dim]{digest}[/] used by:")
        for use in lineage["used_by"]:
            add_use(tree, use)
        if not lineage["used_by"]:
            tree.add("[dim](no other step read it)[/]")
        return tree
    tree = Tree(f"run [bold]{lineage['run_id']}[/] ({lineage['workflow']})")
    add_artifact(tree, lineage["artifact"])
    return tree


def to_mermaid(lineage: dict[str, Any]) -> str:
    """A Mermaid flowchart: data files and artifacts flow into steps, steps into outputs."""
    lines = ["flowchart LR"]
    ids: dict[str, str] = {}

    def node_id(kind: str, label: str, shape: str) -> str:
        key = f"{kind}:{label}"
        if key not in ids:
            ids[key] = f"n{len(ids)}"
            text = label.replace('"', "'")
            opening, closing = {"step": ("[", "]"), "artifact": ("([", "])"), "file": ("[(", ")]")}[
                shape
            ]
            lines.append(f'    {ids[key]}{opening}"{text}"{closing}')
        return ids[key]

    def edge(a: str, b: str) -> None:
        line = f"    {a} --> {b}"
        if line not in lines:
            lines.append(line)

    def walk_artifact(node: dict[str, Any]) -> str:
        art = node_id("artifact", f"{node['name']} {_short(node['key'])}", "artifact")
        step = node.get("produced_by")
        if step is not None:
            edge(walk_step(step), art)
        return art

    def walk_step(step: dict[str, Any]) -> str:
        label = f"{step['step']}" + (f" ({_params(step['params'])})" if step["params"] else "")
        sid = node_id("step", f"{step['run_id']}/{label}", "step")
        for record in step["data_files"]:
            edge(node_id("file", f"{record['path']} {_short(record['sha256'])}", "file"), sid)
        for node in step["inputs"]:
            edge(walk_artifact(node), sid)
        return sid

    def walk_use(source: str, use: dict[str, Any]) -> None:
        sid = node_id("step", f"{use['run_id']}/{use['step']}", "step")
        edge(source, sid)
        for out in use["outputs"]:
            art = node_id("artifact", f"{out['name']} {_short(out['key'])}", "artifact")
            edge(sid, art)
            for inner in out["used_by"]:
                walk_use(art, inner)

    if "used_by" in lineage:
        if "artifact" in lineage:
            head = lineage["artifact"]
            start = node_id("artifact", f"{head['name']} {_short(head['key'])}", "artifact")
        else:
            head = lineage["data_file"]
            start = node_id("file", f"{head['path']} {_short(head['sha256'])}", "file")
        for use in lineage["used_by"]:
            walk_use(start, use)
    else:
        walk_artifact(lineage["artifact"])
    return "\n".join(lines) + "\n"
