"""Why two runs differ: config, params, metrics, code, environment, data files and outputs.

``diff_runs`` returns plain data (``qflow diff --json``); ``compare_runs`` puts several runs
side by side (``qflow compare``). Steps are matched by a stable key (``match_steps``): the
step, its parameters and where its inputs come from, so two ``load_csv`` calls swapped in the
workflow still compare like with like; they are shown under the second run's names. Values are
compared with their types (``1`` and ``1.0`` differ, as they do in a cache key), and every step
whose cache key differs is explained: the code it reaches (with the unified diff of each changed
helper), its params, its inputs and its data files.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from typing import TYPE_CHECKING, Any

from qflow.config.explain import param_change
from qflow.environment import package_changes
from qflow.graph.fingerprint import describe_piece, manifest_changes
from qflow.runtime.cachekey import step_run_keys

if TYPE_CHECKING:
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import Run, StepRun

_MISSING = "<missing>"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists stay values."""
    if isinstance(data, dict) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data} if prefix else {}


def _typed(value: Any) -> str:
    """Equal only for the same value of the same type (``1`` and ``1.0``, ``True`` and ``1``
    differ); NaN equals NaN."""
    return json.dumps(value, sort_keys=True, default=repr)


def changed_values(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[Any]]:
    """Keys whose values (or their types) differ, as ``key: [a, b]`` (``"<missing>"`` when
    absent)."""
    return {
        key: [a.get(key, _MISSING), b.get(key, _MISSING)]
        for key in sorted(a.keys() | b.keys())
        if _typed(a.get(key, _MISSING)) != _typed(b.get(key, _MISSING))
    }


def _same_float(x: float, y: float) -> bool:
    return x == y or (math.isnan(x) and math.isnan(y))


def metric_changes(a: dict[str, float], b: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Every metric of either run: values, delta and relative change."""
    rows: dict[str, dict[str, Any]] = {}
    for key in sorted(a.keys() | b.keys()):
        va, vb = a.get(key), b.get(key)
        row: dict[str, Any] = {"a": va, "b": vb, "delta": None, "relative": None}
        if va is not None and vb is not None:
            row["same"] = _same_float(va, vb)
            if not row["same"]:
                row["delta"] = vb - va
                row["relative"] = (vb - va) / abs(va) if va not in (0.0,) else None
        else:
            row["same"] = False
        rows[key] = row
    return rows


def _source(metadata: MetadataStore, step: StepRun, cache: dict[str, str | None]) -> str | None:
    if step.source_key is None:
        return None
    if step.source_key not in cache:
        cache[step.source_key] = metadata.source(step.source_key)
    return cache[step.source_key]


def _manifest(metadata: MetadataStore, fingerprint: str | None) -> dict[str, Any] | None:
    text = metadata.source(fingerprint) if fingerprint else None
    return None if text is None else dict(json.loads(text))


def reached_changes(
    metadata: MetadataStore, a: dict[str, Any], b: dict[str, Any]
) -> list[dict[str, str]]:
    """Each piece of code whose hash differs between two manifests: what it is, the change
    (``changed``, ``added``, ``no longer used``) and the unified diff of its normalised text."""
    code_a, code_b = a.get("code", {}), b.get("code", {})
    kinds = {**a.get("kinds", {}), **b.get("kinds", {})}
    rows = []
    for label in sorted(code_a.keys() | code_b.keys()):
        hash_a, hash_b = code_a.get(label), code_b.get(label)
        if hash_a == hash_b or label == b.get("step"):  # the step's own source: see "diff"
            continue
        text_a = (metadata.source(hash_a) or "") + "\n" if hash_a else ""
        text_b = (metadata.source(hash_b) or "") + "\n" if hash_b else ""
        what = describe_piece(label, kinds.get(label, "function"), "")
        change = "added" if hash_a is None else "no longer used" if hash_b is None else "changed"
        diff = "".join(
            difflib.unified_diff(
                text_a.splitlines(keepends=True),
                text_b.splitlines(keepends=True),
                f"a/{label}",
                f"b/{label}",
            )
        )
        rows.append({"label": label, "what": f"{what} {change}", "diff": diff})
    return rows


def cache_changes(
    metadata: MetadataStore, a: list[StepRun], b: list[StepRun]
) -> dict[str, list[str]]:
    """Per step whose cache key differs: every difference that changed it, in the words of a
    cache miss (``helper scale() in helpers.py changed``, ``param C: 1 (int) → 1.0 (float)``,
    ``input X changed``, ``data file path changed``)."""
    by_a = {s.name: s for s in a}
    changes: dict[str, list[str]] = {}
    for sb in b:
        sa_ = by_a.get(sb.name)
        if sa_ is None or sa_.cache_key == sb.cache_key or None in (sa_.cache_key, sb.cache_key):
            continue
        found: list[str] = []
        if sa_.fingerprint != sb.fingerprint:
            ma, mb = _manifest(metadata, sa_.fingerprint), _manifest(metadata, sb.fingerprint)
            found.extend(manifest_changes(ma, mb) if ma and mb else ["code changed"])
        for key in sorted(sa_.params.keys() | sb.params.keys()):
            old, new = sa_.params.get(key), sb.params.get(key)
            if old != new:
                found.append(param_change(key, old, new))
        for key in sorted(sa_.inputs.keys() | sb.inputs.keys()):
            old_ref, new_ref = sa_.inputs.get(key), sb.inputs.get(key)
            if (old_ref and old_ref.key) != (new_ref and new_ref.key):
                found.append(f"input {key} changed")
        files_a = {f.name: f.sha256 for f in metadata.data_files(sa_.run_id, sa_.id)}
        for file in metadata.data_files(sb.run_id, sb.id):
            if files_a.get(file.name) != file.sha256:
                found.append(f"data file {file.name} changed")
        changes[sb.name] = found or ["cache key changed"]
    return changes


def code_changes(
    metadata: MetadataStore, a: list[StepRun], b: list[StepRun]
) -> dict[str, dict[str, Any]]:
    """Per step whose code changed: fingerprints, a unified diff of the step's source and the
    pieces of reached code that changed (``reached``), each with its own diff."""
    sources: dict[str, str | None] = {}
    by_a = {s.name: s for s in a}
    by_b = {s.name: s for s in b}
    changes: dict[str, dict[str, Any]] = {}
    for name in [*by_a, *(n for n in by_b if n not in by_a)]:
        sa_, sb = by_a.get(name), by_b.get(name)
        if sa_ is None or sb is None:
            changes[name] = {"only_in": "a" if sb is None else "b", "diff": ""}
            continue
        same_source = sa_.source_key == sb.source_key
        same_fingerprint = sa_.fingerprint == sb.fingerprint
        if same_source and same_fingerprint:
            continue
        text_a, text_b = _source(metadata, sa_, sources), _source(metadata, sb, sources)
        diff = ""
        if text_a is not None and text_b is not None and not same_source:
            diff = "".join(
                difflib.unified_diff(
                    text_a.splitlines(keepends=True),
                    text_b.splitlines(keepends=True),
                    f"a/{name}",
                    f"b/{name}",
                )
            )
        ma, mb = _manifest(metadata, sa_.fingerprint), _manifest(metadata, sb.fingerprint)
        changes[name] = {
            "fingerprint": [sa_.fingerprint, sb.fingerprint],
            "source": [sa_.source_key, sb.source_key],
            "diff": diff,
            "reached": reached_changes(metadata, ma, mb) if ma and mb else [],
        }
    return changes


def environment_changes(metadata: MetadataStore, a: Run, b: Run) -> dict[str, Any]:
    """Python, platform, host, git and package differences between two runs."""
    keys = ("python", "platform", "host", "user", "qflow", "executor")
    env: dict[str, Any] = {
        k: [a.meta.get(k), b.meta.get(k)] for k in keys if a.meta.get(k) != b.meta.get(k)
    }
    git_a, git_b = a.meta.get("git") or {}, b.meta.get("git") or {}
    for key in ("commit", "branch", "dirty", "diff"):
        if git_a.get(key) != git_b.get(key):
            env[f"git.{key}"] = [git_a.get(key), git_b.get(key)]
    if a.meta.get("snapshot") != b.meta.get("snapshot"):
        env["snapshot"] = [a.meta.get("snapshot"), b.meta.get("snapshot")]
    hash_a, hash_b = a.meta.get("packages_hash"), b.meta.get("packages_hash")
    if hash_a != hash_b:
        packages_a = metadata.environment(hash_a) if hash_a else None
        packages_b = metadata.environment(hash_b) if hash_b else None
        if packages_a is not None and packages_b is not None:
            env["packages"] = package_changes(packages_a, packages_b)
        else:
            env["packages"] = {"unknown": [hash_a, hash_b]}
    return env


def data_changes(
    metadata: MetadataStore, a: Run, b: Run, names_a: dict[int, str] | None = None
) -> dict[str, list[Any]]:
    """Data files read (by step and name) whose hash differs or that only one run read;
    ``names_a`` renames ``a``'s step runs (by id) to their partners' names in ``b``."""

    def files(run: Run, names: dict[int, str]) -> dict[str, str]:
        return {
            f"{names.get(f.step_run_id or -1, f.step_name)}:{f.name}": f.sha256
            for f in metadata.data_files(run.id)
        }

    return changed_values(files(a, names_a or {}), files(b, {}))


def output_changes(a: list[StepRun], b: list[StepRun]) -> dict[str, list[Any]]:
    """Step outputs (``step.output``) whose artifact hash differs, or that one run lacks."""

    def outputs(steps: list[StepRun]) -> dict[str, str]:
        return {f"{s.name}.{n}": ref.key for s in steps for n, ref in s.outputs.items()}

    return changed_values(outputs(a), outputs(b))


def match_steps(
    a: list[StepRun],
    b: list[StepRun],
    keys_a: dict[str, str] | None = None,
    keys_b: dict[str, str] | None = None,
) -> list[tuple[StepRun | None, StepRun | None]]:
    """Pair the step runs of two runs: first by stable key (``cachekey.stable_keys``: same
    step, same parameters, inputs from the same calls), then what is left of each step in
    call order (a changed parameter still pairs a step called once). Unpaired ones are
    ``(a, None)`` or ``(None, b)``. Pairs come in ``b``'s order, then ``a``'s leftovers.
    ``keys_a``/``keys_b`` are the keys recorded when the runs ran (``run_keys``)."""
    keys_a = keys_a if keys_a is not None else step_run_keys(a)
    keys_b = keys_b if keys_b is not None else step_run_keys(b)
    by_key_a = {keys_a[s.name]: s for s in a}
    paired: dict[str, StepRun] = {}
    for sb in b:
        found = by_key_a.get(keys_b[sb.name])
        if found is not None and found.name not in {p.name for p in paired.values()}:
            paired[sb.name] = found
    used = {s.name for s in paired.values()}
    left: dict[tuple[str, bool], list[StepRun]] = {}
    for sa_ in a:
        if sa_.name not in used:
            left.setdefault((sa_.step, sa_.name.endswith("]")), []).append(sa_)
    pairs: list[tuple[StepRun | None, StepRun | None]] = []
    for sb in b:
        match = paired.get(sb.name)
        if match is None:
            queue = left.get((sb.step, sb.name.endswith("]")))
            match = queue.pop(0) if queue else None
        pairs.append((match, sb))
    pairs.extend((sa_, None) for queue in left.values() for sa_ in queue)
    return pairs


def run_keys(run: Run, steps: list[StepRun]) -> dict[str, str]:
    """The stable key of each step run of ``run``: as recorded when it ran, when it was."""
    recorded = run.meta.get("step_keys")
    return step_run_keys(steps, recorded if isinstance(recorded, dict) else None)


def aligned_steps(
    a: list[StepRun],
    b: list[StepRun],
    keys_a: dict[str, str] | None = None,
    keys_b: dict[str, str] | None = None,
) -> tuple[list[StepRun], list[StepRun], dict[str, str]]:
    """``a``'s step runs renamed to the names of their partners in ``b`` (so every
    comparison by name compares like with like), ``b`` unchanged, and ``{b name: a name}``
    for each pair whose names differ."""
    renamed: list[StepRun] = []
    moved: dict[str, str] = {}
    names_b = {s.name for s in b}
    for sa_, sb in match_steps(a, b, keys_a, keys_b):
        if sa_ is None:
            continue
        if sb is None:
            name = sa_.name if sa_.name not in names_b else f"{sa_.name} (a)"
        else:
            name = sb.name
            if sa_.name != sb.name:
                moved[sb.name] = sa_.name
        renamed.append(dataclasses.replace(sa_, name=name))
    return renamed, b, moved


def diff_runs(metadata: MetadataStore, run_a: str, run_b: str) -> dict[str, Any]:
    """Everything that differs between two runs (ids or unique prefixes)."""
    a, b = metadata.get_run(run_a), metadata.get_run(run_b)
    recorded_a, recorded_b = metadata.step_runs(a.id), metadata.step_runs(b.id)
    steps_a, steps_b, moved = aligned_steps(
        recorded_a, recorded_b, run_keys(a, recorded_a), run_keys(b, recorded_b)
    )
    names_a = {s.id: s.name for s in steps_a}
    statuses = changed_values(
        {s.name: s.status for s in steps_a}, {s.name: s.status for s in steps_b}
    )
    return {
        "a": {"id": a.id, "workflow": a.workflow, "status": a.status},
        "b": {"id": b.id, "workflow": b.workflow, "status": b.status},
        "config": changed_values(flatten(a.config), flatten(b.config)),
        "params": changed_values(a.params, b.params),
        "metrics": metric_changes(a.metrics_summary, b.metrics_summary),
        "code": code_changes(metadata, steps_a, steps_b),
        "cache": cache_changes(metadata, steps_a, steps_b),
        "environment": environment_changes(metadata, a, b),
        "data": data_changes(metadata, a, b, names_a),
        "outputs": output_changes(steps_a, steps_b),
        "steps": statuses,
        "matched": moved,
    }


def compare_runs(metadata: MetadataStore, run_ids: list[str]) -> dict[str, Any]:
    """Several runs side by side: ``rows`` of ``(section, key, [value per run])``; keys with
    the same value in every run are left out unless ``all`` is asked of the caller."""
    runs = [metadata.get_run(r) for r in run_ids]
    columns: list[dict[str, Any]] = []
    for run in runs:
        git = run.meta.get("git") or {}
        column: dict[str, Any] = {
            "run.workflow": run.workflow,
            "run.status": run.status,
            "env.python": run.meta.get("python"),
            "env.git": (git.get("commit") or "")[:10] + ("+dirty" if git.get("dirty") else ""),
            "env.packages": (run.meta.get("packages_hash") or "")[:10],
        }
        column.update({f"config.{k}": v for k, v in flatten(run.config).items()})
        column.update({f"params.{k}": v for k, v in run.params.items()})
        column.update({f"metrics.{k}": v for k, v in run.metrics_summary.items()})
        columns.append(column)
    keys: list[str] = []
    for column in columns:
        keys.extend(k for k in column if k not in keys)
    order = {"run": 0, "env": 1, "config": 2, "params": 3, "metrics": 4}
    keys.sort(key=lambda k: (order.get(k.split(".", 1)[0], 9), k))
    rows = []
    for key in keys:
        values = [column.get(key) for column in columns]
        rows.append({"key": key, "values": values, "same": all(v == values[0] for v in values)})
    return {"runs": [r.id for r in runs], "rows": rows}
