"""Decide whether a step call can come from the cache, and say why it cannot.

The key is the hash of the step's code fingerprint, its input artifacts' hashes, its
parameters (their canonical JSON, so ``1`` and ``1.0`` differ) and the hashes of its
``qf.DataFile`` arguments. Every other file a step read is known only once it ran
(``runtime.reads``): a hit is taken only if each file the cached step run read still has the
content it read (checked through a stat cache, so unchanged files are not re-hashed).

The fingerprint covers the project code the step reaches, the packages it uses and
the decorator options that shape its outputs (``qflow.graph.fingerprint.code_manifest``); on a
miss the manifest and the code texts are saved with the step run's metadata, so the next miss
and ``qflow diff`` can name the helper that changed and show its diff.

A hit is reused only if every output was written by the current version of its serializer,
so a serializer change re-runs exactly the steps whose outputs it writes (and what downstream
then sees different bytes). On a miss the decision names what changed since the last run of
the same step call, which no peer framework tells its users.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.config.explain import param_change
from qflow.dsl.values import DataFile
from qflow.errors import QFlowError
from qflow.graph.fingerprint import CodeManifest, cache_key, code_manifest, manifest_changes
from qflow.graph.model import EdgeKind
from qflow.runtime import reads
from qflow.store.metadata.records import DataFileRecord

if TYPE_CHECKING:
    from qflow.dsl.step import Step
    from qflow.graph.model import Graph, Node
    from qflow.store.artifacts import ArtifactRef, ArtifactStore
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import StepRun


@dataclass(frozen=True)
class CacheDecision:
    """The cache key, the code fingerprint, a hit (or None) and the reason the step runs."""

    key: str
    fingerprint: str
    hit: StepRun | None
    reason: str
    data_files: tuple[DataFileRecord, ...] = field(default=())
    inputs: Mapping[str, ArtifactRef] = field(default_factory=dict)
    """The input artifacts by argument path the key was computed from (recorded as the step
    run's inputs)."""


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.cache
def data_file_parameters(fn: Callable[..., Any]) -> frozenset[str]:
    """The parameters of ``fn`` annotated ``qf.DataFile`` (resolved once per function)."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return frozenset()
    return frozenset(name for name, hint in hints.items() if hint is DataFile)


def data_files(step: Step[..., Any], arguments: Mapping[str, Any]) -> tuple[DataFileRecord, ...]:
    """Hash every argument that is a ``qf.DataFile`` (by annotation or by value)."""
    annotated = data_file_parameters(step.fn)
    found = []
    for name, value in arguments.items():
        if not (
            isinstance(value, DataFile) or (name in annotated and isinstance(value, str | Path))
        ):
            continue
        path = Path(value).expanduser().resolve()
        if not path.is_file():
            raise QFlowError(
                f"DataFile {str(value)!r} (argument {name!r} of step {step.name!r}) does not "
                "exist or is not a file. Hint: check the path in the config."
            )
        found.append(DataFileRecord(name, str(path), hash_file(path), path.stat().st_size))
    return tuple(found)


_FILES_OF: dict[int, tuple[str, tuple[DataFileRecord, ...]]] = {}
"""Files of finished step runs (which never change), by step run id, for this process:
multiruns, sweeps and notebooks check a hit's reads without asking the store again."""
_ALL_FILES_OF: dict[int, tuple[str, tuple[DataFileRecord, ...]]] = {}
"""The same with the ``qf.DataFile`` records too (what a miss compares with)."""


def _decides(record: DataFileRecord) -> bool:
    """Whether a recorded file decides a hit: a file the step read or wrote, or a
    ``qf.Client`` read (its ``qf.DataFile`` arguments are in the key already)."""
    return (
        reads.is_read_record(record.name)
        or reads.is_write_record(record.name)
        or reads.is_client_record(record.name)
    )


class StepIdentity:
    """Computes cache decisions for one run; fingerprints are computed once per step."""

    def __init__(
        self,
        metadata: MetadataStore,
        artifacts: ArtifactStore,
        workflow: str,
        *,
        use_cache: bool,
        rerun: Collection[str],
        reuse: Mapping[str, StepRun] | None,
        project_root: str = "",
    ) -> None:
        self.metadata = metadata
        self.root = Path(project_root or ".").absolute()
        self.artifacts = artifacts
        self.workflow = workflow
        self.use_cache = use_cache
        self.rerun = set(rerun)
        self.reuse = dict(reuse or {})
        self.run_id = ""
        self._versions: dict[str, str] | None = None
        self._saved: set[str] = set()
        self._manifests: dict[int, tuple[Step[..., Any], CodeManifest]] = {}
        self._sources: dict[str, str | None] = {}
        """Saved manifests of earlier fingerprints, read once per run for all the misses."""

    def manifest(self, step: Step[..., Any]) -> CodeManifest:
        """What the step's fingerprint covers: the project code it reaches, the packages it
        uses, its declared version, its output names and the serializers that may write them."""
        known = self._manifests.get(id(step))
        if known is not None and known[0] is step:
            return known[1]
        from qflow.store.serializers import current

        options = {
            "version": step.options.version,
            "outputs": list(step.outputs),
            "serializers": current().names(),
        }
        manifest = code_manifest(step.code_root, options)
        self._manifests[id(step)] = (step, manifest)
        return manifest

    def remember(self, manifest: CodeManifest) -> None:
        """Save the manifest (under its sha256, the fingerprint) and the code texts it lists,
        once per run, so later misses and ``qflow diff`` can explain a changed fingerprint."""
        if manifest.fingerprint not in self._saved:
            self._saved.add(manifest.fingerprint)
            self.metadata.save_sources([manifest.json, *manifest.texts.values()])

    def stale_serializers(self, hit: StepRun) -> list[str]:
        """Outputs of ``hit`` written by another version of their serializer than today's."""
        if self._versions is None:
            from qflow.store.serializers import serializer_versions

            self._versions = serializer_versions()
        return [
            f"serializer {r.serializer} changed ({r.serializer_version} → "
            f"{self._versions[r.serializer]})"
            for r in hit.outputs.values()
            if r.serializer_version
            and r.serializer in self._versions
            and r.serializer_version != self._versions[r.serializer]
        ]

    def decide(
        self,
        node: Node,
        step: Step[..., Any],
        arguments: Mapping[str, Any],
        inputs: Mapping[str, ArtifactRef],
        item: int | None = None,
    ) -> CacheDecision:
        """``inputs`` maps argument paths (``X``, ``scores[0]``) to artifacts, so the key
        does not change when steps elsewhere in the workflow are added or renumbered."""
        return self.decide_many(node, step, [(arguments, inputs, item)])[0]

    def decide_many(
        self,
        node: Node,
        step: Step[..., Any],
        calls: Sequence[tuple[Mapping[str, Any], Mapping[str, ArtifactRef], int | None]],
    ) -> list[CacheDecision]:
        """``decide`` for several calls of one node (a map's items), with the store asked
        once for all of them (hits, earlier runs of the misses, their files), not per call."""
        manifest = self.manifest(step)
        fingerprint = manifest.fingerprint
        keyed = []
        for arguments, inputs, item in calls:
            files = data_files(step, arguments)
            params = dict(node.params)
            params.update({f"data:{f.name}": f.sha256 for f in files})
            key = cache_key(fingerprint, {k: r.key for k, r in inputs.items()}, params)
            name = node.name if item is None else f"{node.name}[{item}]"
            keyed.append((key, name, params, inputs, files))
        forced = self._forced(node, step)
        resumed = {
            name
            for key, name, *_ in keyed
            if (previous := self.reuse.get(name)) is not None and previous.cache_key == key
        }
        asked = [] if forced else [key for key, name, *_ in keyed if name not in resumed]
        hits = self.metadata.find_cached_many(asked) if asked else {}
        self.prefetch_files(hits.values())
        decisions = [
            self._decision(key, fingerprint, hits.get(key), files, inputs)
            if name not in resumed and forced is None
            else None
            for key, name, params, inputs, files in keyed
        ]
        unexplained = [
            name
            for (_, name, *_), decision in zip(keyed, decisions, strict=True)
            if decision is not None and decision.hit is None and not decision.reason
        ]
        explained = self._previous(unexplained) if unexplained else {}
        decided = []
        for (key, name, params, inputs, files), decision in zip(keyed, decisions, strict=True):
            if name in resumed:
                resumed_from = self.reuse[name]
                decided.append(
                    CacheDecision(key, fingerprint, resumed_from, "resumed", files, inputs)
                )
                continue
            if decision is not None and decision.hit is not None:
                decided.append(decision)
                continue
            self.remember(manifest)
            if forced is not None:
                reason = forced
            elif decision is not None and decision.reason:
                reason = decision.reason
            else:
                reason = self._explain(explained.get(name), manifest, params, inputs, files)
            decided.append(CacheDecision(key, fingerprint, None, reason, files, inputs))
        return decided

    def _decision(
        self,
        key: str,
        fingerprint: str,
        hit: StepRun | None,
        files: tuple[DataFileRecord, ...],
        inputs: Mapping[str, ArtifactRef],
    ) -> CacheDecision:
        """The decision on a found ``hit``: taken, or refused with the reason (stale
        serializers, changed reads); a miss has no reason yet (it is explained later)."""
        if hit is not None:
            stale = self.stale_serializers(hit)
            if stale:
                return CacheDecision(key, fingerprint, None, "; ".join(stale), files, inputs)
            if all(self.artifacts.intact(r) for r in hit.outputs.values()):
                seen = self.files_of(hit)
                changed = reads.changed_reads(seen, self.root) + self.changed_queries(seen)
                if changed:
                    return CacheDecision(key, fingerprint, None, "; ".join(changed), files, inputs)
                return CacheDecision(key, fingerprint, hit, "cache hit", files + seen, inputs)
        return CacheDecision(key, fingerprint, None, "", files, inputs)

    def _previous(self, names: Sequence[str]) -> dict[str, StepRun]:
        """The latest earlier run of each step call, with its files fetched too."""
        if not self.run_id:
            return {}
        found = self.metadata.previous_step_runs(self.workflow, names, self.run_id)
        self.prefetch_files(found.values())
        return found

    def prefetch_files(self, step_runs: Iterable[StepRun]) -> None:
        """Fetch the files of many finished step runs in one query (not one per step run)
        into the process's caches (``files_of``, ``all_files_of``)."""
        runs = {
            s.id: s.run_id
            for s in step_runs
            if (known := _FILES_OF.get(s.id)) is None or known[0] != s.run_id
        }
        if len(runs) < 2:
            return  # one step run: its own query, as when it is asked for
        by_step: dict[int, list[DataFileRecord]] = {i: [] for i in runs}
        for record in self.metadata.data_files_of(list(runs)):
            if record.step_run_id in by_step:
                by_step[record.step_run_id].append(record)
        for step_run_id, records in by_step.items():
            files = tuple(records)
            _ALL_FILES_OF[step_run_id] = (runs[step_run_id], files)
            _FILES_OF[step_run_id] = (runs[step_run_id], tuple(filter(_decides, files)))

    def files_of(self, step_run: StepRun) -> tuple[DataFileRecord, ...]:
        """The files ``step_run`` read and wrote while it ran (not its ``qf.DataFile``s)."""
        self.load_stat_cache()
        known = _FILES_OF.get(step_run.id)
        if known is None or known[0] != step_run.run_id:
            files = self.all_files_of(step_run)
            known = _FILES_OF[step_run.id] = (step_run.run_id, tuple(filter(_decides, files)))
        return known[1]

    def all_files_of(self, step_run: StepRun) -> tuple[DataFileRecord, ...]:
        """Every file recorded for ``step_run`` (its ``qf.DataFile``s too)."""
        known = _ALL_FILES_OF.get(step_run.id)
        if known is None or known[0] != step_run.run_id:
            files = tuple(self.metadata.data_files(step_run.run_id, step_run.id))
            known = _ALL_FILES_OF[step_run.id] = (step_run.run_id, files)
        return known[1]

    def changed_queries(self, records: Collection[DataFileRecord]) -> list[str]:
        """Why recorded ``qf.Client`` queries of runs no longer hold: each is asked again
        and must return the same runs (``runs of movie_stats read by the step changed``)."""
        reasons = []
        for record in records:
            if not record.name.startswith(reads.CLIENT_RUNS):
                continue
            query = json.loads(record.name.removeprefix(reads.CLIENT_RUNS))
            text = query.pop("filter", None)
            found = (
                self.metadata.runs_matching(text, **query)
                if text
                else self.metadata.list_runs(**query)
            )
            if reads.runs_digest((r.id, r.status) for r in found) != record.sha256:
                what = query.get("workflow") or "the project"
                latest = f" (latest now {found[0].id})" if found else ""
                reasons.append(f"runs of {what} read by the step changed{latest}")
        return reasons

    def load_stat_cache(self) -> None:
        reads.STAT_CACHE.load(self.root / ".qflow")

    def learn(self, files: Collection[reads.FileAccess], hashed_at: float) -> None:
        """Keep the hashes a worker made of the files it read, for the next cache check."""
        reads.learn(files, self.root, hashed_at)

    def save(self) -> None:
        """Save the stat cache (file hashes by size and mtime) for the next run."""
        reads.STAT_CACHE.save(self.root / ".qflow")

    def _forced(self, node: Node, step: Step[..., Any]) -> str | None:
        if not self.use_cache:
            return "--no-cache"
        if node.name in self.rerun or node.step in self.rerun:
            return f"--rerun {node.step}"
        if not step.options.cache:
            return "cache=False"
        return None

    def _explain(
        self,
        before: StepRun | None,
        manifest: CodeManifest,
        params: Mapping[str, str],
        inputs: Mapping[str, ArtifactRef],
        files: tuple[DataFileRecord, ...],
    ) -> str:
        """What changed since ``before``, the latest earlier run of the same call."""
        if not self.run_id:
            return "not in the cache"
        if before is None:
            return "first run of this step"
        changes = []
        if before.fingerprint and before.fingerprint != manifest.fingerprint:
            changes.extend(self.code_changes(before.fingerprint, manifest))
        for key in sorted(set(params) | set(before.params)):
            if key.startswith("data:"):
                continue
            old, new = before.params.get(key), params.get(key)
            if old != new:
                changes.append(param_change(key, old, new))
        recorded = self.all_files_of(before)
        old_files = {f.name: f.sha256 for f in recorded}
        for file in files:
            if old_files.get(file.name) not in (None, file.sha256):
                changes.append(f"data file {file.name} ({Path(file.path).name}) changed")
        self.load_stat_cache()
        changes.extend(reads.changed_reads(recorded, self.root))
        changes.extend(self.changed_queries(recorded))
        old_inputs = {k: r.key for k, r in before.inputs.items()}
        for key, ref in inputs.items():
            if key in old_inputs and old_inputs[key] != ref.key:
                changes.append(f"input {key} changed")
        return "; ".join(changes) or "not in the cache (outputs missing or never succeeded)"

    def code_changes(self, before: str, manifest: CodeManifest) -> list[str]:
        """What changed in the code since fingerprint ``before`` (``code changed`` when its
        manifest was not saved: a run of an older QFlow)."""
        text = self._sources.get(before)
        if before not in self._sources:
            text = self._sources[before] = self.metadata.source(before)
        if text is None:
            return ["code changed"]
        return manifest_changes(json.loads(text), manifest.parsed) or ["code changed"]


# -- stable step identity ------------------------------------------------------------------

_ITEM = re.compile(r"^(.*)\[(\d+)\]$")


@dataclass(frozen=True)
class CallShape:
    """What identifies a step call apart from its place in call order: the step, its
    constant parameters (canonical texts) and where each input comes from, as
    ``(argument path, source call's name, source output)``; or the name the user gave it
    (``named``)."""

    name: str
    step: str
    params: Mapping[str, str]
    inputs: Sequence[tuple[str, str, str]] = ()
    named: bool = False


def stable_keys(calls: Iterable[CallShape]) -> dict[str, str]:
    """A key per call (given in trace order) that survives reordering: ``step@digest`` where
    the digest covers the parameters and the keys of the calls feeding each input, and
    ``#n`` tells apart the n-th call of the same step with the same inputs. A mapped item
    (``3_fit[2]``) is its map's key plus ``[2]``. Two runs' calls with the same key are the
    same call, whatever their run names (``0_load_csv`` / ``1_load_csv``). A call the user
    named (``fit.named("train_a")``) has its name as its key, whatever its parameters and
    inputs (a call name has no ``@``, so it is never another call's key)."""
    keys: dict[str, str] = {}
    count: dict[str, int] = {}
    for call in calls:
        item = _ITEM.match(call.name)
        if item is not None and item.group(1) in keys:
            keys[call.name] = f"{keys[item.group(1)]}[{item.group(2)}]"
            continue
        if call.named:
            keys[call.name] = call.name
            continue
        sources = sorted((arg, keys.get(src, "?"), out) for arg, src, out in call.inputs)
        basis = json.dumps([call.step, sorted(call.params.items()), sources])
        key = f"{call.step}@{hashlib.sha256(basis.encode()).hexdigest()[:10]}"
        seen = count.get(key, 0)
        count[key] = seen + 1
        keys[call.name] = key if seen == 0 else f"{key}#{seen}"
    return keys


def graph_keys(graph: Graph) -> dict[str, str]:
    """``stable_keys`` of a traced graph's calls (data edges are the inputs)."""
    inputs: dict[str, list[tuple[str, str, str]]] = {n.name: [] for n in graph.nodes}
    for edge in graph.edges:
        if edge.kind is EdgeKind.DATA:
            inputs[edge.target].append((edge.target_arg, edge.source, edge.output))
    return stable_keys(
        CallShape(n.name, n.step, dict(n.params), inputs[n.name], n.named) for n in graph.nodes
    )


_READ_FROM_RUN = re.compile(r"^[0-9a-z]{26}/")
"""An input named ``RUN/STEP.OUTPUT``: another run's output read through ``qf.Client``."""


def step_run_keys(
    step_runs: Sequence[StepRun], recorded: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The stable keys of a recorded run's step runs (in position order): those ``recorded``
    when it ran (``run.meta["step_keys"]``: ``graph_keys`` of its whole graph), else
    ``stable_keys`` of the step runs, each input traced to the closest earlier step run of
    the run that wrote the same artifact."""
    computed = _traced_keys(step_runs)
    if not recorded:
        return computed
    keys: dict[str, str] = {}
    for step_run in step_runs:
        item = _ITEM.match(step_run.name)
        if step_run.name in recorded:
            keys[step_run.name] = recorded[step_run.name]
        elif item is not None and item.group(1) in recorded:
            keys[step_run.name] = f"{recorded[item.group(1)]}[{item.group(2)}]"
        else:
            keys[step_run.name] = computed[step_run.name]
    return keys


def _traced_keys(step_runs: Sequence[StepRun]) -> dict[str, str]:
    producers: dict[str, list[tuple[int, str, str]]] = {}
    for step_run in step_runs:
        for output, ref in step_run.outputs.items():
            producers.setdefault(ref.key, []).append((step_run.position, step_run.name, output))
    shapes = []
    for step_run in step_runs:
        inputs = []
        for arg, ref in step_run.inputs.items():
            if _READ_FROM_RUN.match(arg):
                continue
            before = [p for p in producers.get(ref.key, []) if p[0] < step_run.position]
            source = max(before) if before else (0, "", "")
            inputs.append((arg, source[1], source[2]))
        shapes.append(CallShape(step_run.name, step_run.step, step_run.params, inputs))
    return stable_keys(shapes)
