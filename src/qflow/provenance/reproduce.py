"""``qflow reproduce RUN``: run again with the recorded config and code, then check outputs.

The code comes from where the run recorded it: the working tree when it still matches (same
commit, same uncommitted diff), else a temporary ``git worktree`` of the recorded commit with
the recorded diff applied, or the recorded source snapshot outside git. A ``qflow exec`` run's
input files come from the copies it kept when they changed or went away. The new run goes to the
same stores, in a fresh process (so no module of the current code is reused), with the cache
off, and is tagged ``reproduces=RUN``. Environment differences (Python, platform, packages) are
reported as warnings; each output's hash is compared with the original's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow import environment
from qflow.config.project import find_project
from qflow.errors import QFlowError, StoreError
from qflow.store.metadata.records import RunStatus

if TYPE_CHECKING:
    from qflow.store.artifacts import ArtifactStore
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import Run

_SHOWN_PACKAGES = 10


@dataclass(frozen=True)
class OutputCheck:
    """One output of the original run and whether the reproduction made the same bytes."""

    name: str
    original: str
    new: str | None

    @property
    def matches(self) -> bool:
        return self.original == self.new


@dataclass
class Reproduction:
    original: str
    run_id: str | None = None
    status: str = RunStatus.FAILED
    source: str = ""
    warnings: list[str] = field(default_factory=list)
    outputs: list[OutputCheck] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.status == RunStatus.SUCCEEDED and all(o.matches for o in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": self.original,
            "run_id": self.run_id,
            "status": self.status,
            "source": self.source,
            "warnings": self.warnings,
            "identical": self.identical,
            "outputs": [
                {"name": o.name, "original": o.original, "new": o.new, "matches": o.matches}
                for o in self.outputs
            ],
        }


def environment_warnings(metadata: MetadataStore, run: Run, project_root: Path) -> list[str]:
    """How this interpreter and machine differ from the recorded ones."""
    now = environment.capture(project_root, "", cache_dir=project_root / ".qflow")
    warnings = []
    for key in ("python", "platform"):
        if run.meta.get(key) and run.meta.get(key) != now[key]:
            warnings.append(f"{key} was {run.meta[key]}, is {now[key]}")
    recorded = run.meta.get("packages_hash")
    if recorded and recorded != now["packages_hash"]:
        old = metadata.environment(recorded)
        if old is None:
            warnings.append("installed packages differ (the recorded list is missing)")
        else:
            changes = environment.package_changes(old, now["packages"])
            lines = [f"+{k}=={v}" for k, v in changes["added"].items()]
            lines += [f"-{k}=={v}" for k, v in changes["removed"].items()]
            lines += [f"{k} {a} → {b}" for k, (a, b) in changes["changed"].items()]
            shown = ", ".join(sorted(lines)[:_SHOWN_PACKAGES])
            more = len(lines) - _SHOWN_PACKAGES
            warnings.append(
                f"installed packages differ: {shown}{f' and {more} more' if more > 0 else ''}"
            )
    return warnings


def _blob(artifacts: ArtifactStore, key: str) -> bytes:
    from qflow.store.artifacts import ArtifactRef

    data = artifacts.get(ArtifactRef(key, "bytes", 0, "builtins.bytes", False))
    if not isinstance(data, bytes):
        raise StoreError(f"Blob {key[:12]!r} is not raw bytes.")
    return data


def _run_git(root: Path, *args: str) -> None:
    done = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise QFlowError(
            f"git {' '.join(args[:2])} failed in {root}: {done.stderr.strip()}. "
            "Hint: the recorded commit must still exist in this repository."
        )


@contextlib.contextmanager
def code_of(run: Run, artifacts: ArtifactStore, project_root: Path) -> Iterator[tuple[Path, str]]:
    """The project folder holding the run's code, and where it came from."""
    git = run.meta.get("git")
    snapshot = run.meta.get("snapshot")
    if git:
        now = environment.git_state(project_root)
        now_diff = now and now["diff"] and hashlib.sha256(now["diff"].encode()).hexdigest()
        if now is not None and now["commit"] == git["commit"] and now_diff == (git["diff"] or ""):
            yield project_root, "the working tree (unchanged since the run)"
            return
        repo = Path(git["root"]) if Path(git["root"]).is_dir() else project_root
        with tempfile.TemporaryDirectory(prefix="qflow-reproduce-") as tmp:
            tree = Path(tmp) / "tree"
            _run_git(repo, "worktree", "add", "--detach", str(tree), git["commit"])
            try:
                where = f"a worktree of commit {git['commit'][:10]}"
                if git.get("diff"):
                    patch = Path(tmp) / "run.diff"
                    patch.write_bytes(_blob(artifacts, git["diff"]))
                    _run_git(tree, "apply", "--whitespace=nowarn", str(patch))
                    where += " with the run's uncommitted changes"
                yield tree / git.get("subdir", ""), where
            finally:
                subprocess.run(
                    ["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                    capture_output=True,
                    check=False,
                )
        return
    if snapshot:
        current = environment.source_snapshot(project_root)
        if current is not None and hashlib.sha256(current).hexdigest() == snapshot:
            yield project_root, "the project folder (unchanged since the run)"
            return
        with tempfile.TemporaryDirectory(prefix="qflow-reproduce-") as tmp:
            environment.extract_snapshot(_blob(artifacts, snapshot), Path(tmp))
            yield Path(tmp), f"the run's source snapshot {snapshot[:10]}"
        return
    yield project_root, "the project folder (the run recorded no code version)"


def kept_data_files(metadata: MetadataStore, run_id: str) -> dict[str, dict[str, Any]]:
    """The ``qf.DataFile``s of a workflow run whose content it kept (``keep=True``, or
    ``[tool.qflow] keep-data-files``), in the form ``inputs_restored`` takes."""
    kept = {a.ref.key for a in metadata.run_artifacts(run_id) if a.name.startswith("data:")}
    return {
        record.path: {"sha256": record.sha256, "size": record.size, "kept": record.sha256}
        for record in metadata.data_files(run_id)
        if record.sha256 in kept  # a kept file's blob is its bytes: its key is their sha256
    }


@contextlib.contextmanager
def inputs_restored(
    run: Run,
    artifacts: ArtifactStore,
    folder: Path,
    data_files: dict[str, dict[str, Any]] | None = None,
) -> Iterator[list[str]]:
    """Put the files a ``qflow exec`` run read (and the ``data_files`` a workflow run kept)
    back where they were read, from the copies the run kept: a missing one stays restored; a
    changed one is set aside while the block runs and put back after it. Yields what was done
    (and what could not be), for the report."""
    from qflow.runtime.reads import absolute, file_digest

    recorded = {**((run.meta.get("files") or {}).get("read") or {}), **(data_files or {})}
    notes: list[str] = []
    set_aside: list[tuple[Path, Path]] = []
    try:
        for name, info in sorted(recorded.items()):
            target = Path(absolute(name, folder))
            try:
                current: str | None = file_digest(target)[0]
            except OSError:
                current = None
            if current == info["sha256"]:
                continue
            if "kept" not in info:
                notes.append(
                    f"input {name} {'changed' if current else 'is missing'} and was not kept "
                    f"(over {info['size']} bytes limit): the reproduction reads what is there"
                )
                continue
            data = artifacts.read_bytes(info["kept"])
            if current is not None:
                aside = target.with_name(f".{target.name}.qflow-reproduce")
                os.replace(target, aside)
                set_aside.append((target, aside))
                notes.append(
                    f"input {name} changed since the run: the run's copy was used, "
                    "and yours put back afterwards"
                )
            else:
                notes.append(f"input {name} was missing: restored from the run's copy")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.qflow-tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        yield notes
    finally:
        for target, aside in reversed(set_aside):
            os.replace(aside, target)


def _child_spec(run: Run, project_root: Path, folder: Path) -> dict[str, Any]:
    script = run.meta.get("script")
    if script:
        return {"script": script["path"], "args": script["args"], "original": run.id}
    return {
        "workflow": _workflow_in(run, project_root, folder),
        "config": run.config,
        "original": run.id,
    }


def _workflow_in(run: Run, project_root: Path, folder: Path) -> str:
    """The recorded way to find the workflow (``module:function`` or ``file.py:function``),
    with a file inside the project moved to the copy of the code being run."""
    ref = str(run.meta.get("workflow_ref") or run.workflow)
    path, sep, name = ref.rpartition(":")
    if sep and path.endswith(".py"):
        try:
            return f"{folder / Path(path).relative_to(project_root)}:{name}"
        except ValueError:
            return ref
    return ref


def _launch_child(spec: dict[str, Any], folder: Path, project_root: Path) -> str:
    """Run the spec in a fresh interpreter in ``folder``; return the new run's id."""
    from qflow.store.location import default_artifacts_url, default_store_url

    env = dict(os.environ)
    env["QFLOW_STORE"] = default_store_url(project_root)
    env["QFLOW_ARTIFACTS"] = default_artifacts_url(project_root)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(spec, file)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "qflow.provenance.reproduce", file.name],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(file.name)
    sys.stdout.write(done.stdout.rpartition("QFLOW_RUN_ID=")[0])
    sys.stderr.write(done.stderr)
    marker = done.stdout.rpartition("QFLOW_RUN_ID=")[2].strip()
    if not marker:
        raise QFlowError(
            f"Reproducing run {spec['original']} did not start a run (exit code "
            f"{done.returncode}). Hint: see the error above."
        )
    return marker


def reproduce(run_id: str, *, project_dir: str | Path | None = None) -> Reproduction:
    """Re-run ``run_id`` with its recorded config and code; compare every output's hash."""
    from qflow.store import open_stores

    project = find_project(Path(project_dir) if project_dir else None)
    metadata, artifacts = open_stores(project.root)
    run = metadata.get_run(run_id)
    report = Reproduction(run.id, warnings=environment_warnings(metadata, run, project.root))
    with (
        code_of(run, artifacts, project.root) as (folder, where),
        inputs_restored(run, artifacts, folder, kept_data_files(metadata, run.id)) as notes,
    ):
        report.source = where
        report.warnings.extend(notes)
        report.run_id = _launch_child(_child_spec(run, project.root, folder), folder, project.root)
    new = metadata.get_run(report.run_id)
    report.status = new.status
    new_outputs = {
        f"{s.name}.{n}": ref.key for s in metadata.step_runs(new.id) for n, ref in s.outputs.items()
    }
    for step in metadata.step_runs(run.id):
        for name, ref in step.outputs.items():
            label = f"{step.name}.{name}"
            report.outputs.append(OutputCheck(label, ref.key, new_outputs.get(label)))
    return report


def _child(spec_path: str) -> int:
    """In the fresh interpreter: run the spec, print the run id on the last line."""
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    tags = {"reproduces": spec["original"]}
    if "script" in spec:
        from qflow.provenance.script import exec_script

        result = exec_script(spec["script"], spec["args"], project_dir=Path.cwd(), tags=tags)
        run_id = result.run_id
    else:
        from qflow.errors import StepFailedError
        from qflow.runtime.launch import LaunchRequest, launch

        try:
            run_id = launch(
                LaunchRequest(
                    spec["workflow"],
                    spec["config"],
                    project_dir=Path.cwd(),
                    use_cache=False,
                    tags=tags,
                    command=f"qflow reproduce {spec['original']}",
                )
            )
        except StepFailedError as exc:
            sys.stderr.write(f"{exc}\n")
            run_id = exc.run_id
    sys.stdout.write(f"\nQFLOW_RUN_ID={run_id}\n")
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
