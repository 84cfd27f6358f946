"""What a run ran on: code version, interpreter, machine, user, command and installed packages.

Standard library only (and ``qflow.distribution``). ``capture`` is cheap enough for every run start:

- git: one ``git status`` call, plus ``git diff`` only when the tree is dirty (about 5 ms each);
  outside git, a deterministic tar of the project's source files instead.
- packages and the platform string: reading every distribution's metadata takes 30–60 ms and
  ``platform.platform()`` runs ``uname -p`` (5–15 ms), so both are cached on disk, under the
  project's ``.qflow`` and for the user (``$XDG_CACHE_HOME/qflow``, so a new project's first
  run finds them too), keyed by the interpreter, the mtimes of the ``sys.path`` folders (which
  change whenever a package is installed, upgraded or removed), ``os.uname()`` and the libc.

``persist`` then stores the bulky parts once (diff and snapshot as content-addressed blobs, the
package list in the metadata store keyed by its hash) and returns the small ``meta`` dict that
goes with the run.
"""

from __future__ import annotations

import getpass
import gzip
import hashlib
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from qflow.distribution import interpreter_key, name_and_version, user_cache_file, write_cache

if TYPE_CHECKING:
    from collections.abc import Callable

SOURCE_SUFFIXES = frozenset(
    {".py", ".pyi", ".ipynb", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".txt", ".md", ".sh"}
    | {".sql", ".json", ".r", ".R", ".jl"}
)
SNAPSHOT_FILE_MAX = 1 << 20
SNAPSHOT_TOTAL_MAX = 20 << 20
_SKIP_DIRS = frozenset({"__pycache__", "node_modules", "build", "dist", "venv", "env"})
_UNTRACKED_MAX = 256 << 10
_CACHE_FILE = "environment-cache.json"
_memo: dict[str, dict[str, Any]] = {}


def capture(project_root: Path, command: str, *, cache_dir: Path | None = None) -> dict[str, Any]:
    """Everything about where and how a run starts.

    Returns plain data: ``git`` (commit, branch, dirty, ``diff`` text, repository root and the
    project's folder in it) or ``None`` outside git, ``snapshot`` (tar.gz bytes of the source
    files) outside git, ``packages`` (name → version) and ``packages_hash``, and ``python``,
    ``platform``, ``host``, ``user``, ``command``, ``argv``.
    """
    root = Path(project_root).absolute()
    git = git_state(root)
    facts = _interpreter(cache_dir)
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "platform": facts["platform"],
        "host": socket.gethostname(),
        "user": _user(),
        "command": command,
        "argv": list(sys.argv),
        "cwd": str(Path.cwd()),
        "git": git,
        "snapshot": None if git is not None else source_snapshot(root),
        "packages_hash": facts["hash"],
        "packages": facts["packages"],
    }


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


# -- git ---------------------------------------------------------------------------------------


def git_root(folder: Path) -> Path | None:
    """The work tree root holding ``folder`` (a ``.git`` folder or file), without running git."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done if done.returncode == 0 else None


def git_state(project_root: Path) -> dict[str, Any] | None:
    """Commit, branch and uncommitted changes of the repository around ``project_root``."""
    root = git_root(project_root)
    if root is None:
        return None
    status = _git(root, "status", "--porcelain=v2", "--branch", "--untracked-files=all", "-z")
    if status is None:
        return None
    commit: str | None = None
    branch: str | None = None
    changed = False
    untracked: list[str] = []
    for entry in status.stdout.decode(errors="replace").split("\0"):
        if entry.startswith("# branch.oid "):
            oid = entry.split(" ", 2)[2]
            commit = None if oid == "(initial)" else oid
        elif entry.startswith("# branch.head "):
            head = entry.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif entry.startswith("? "):
            untracked.append(entry[2:])
        elif entry and not entry.startswith("#"):
            changed = True
    if commit is None:
        return None
    diff = ""
    if changed:
        done = _git(root, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff")
        diff = done.stdout.decode(errors="replace") if done is not None else ""
    diff += _untracked_diff(root, untracked)
    return {
        "commit": commit,
        "branch": branch,
        "dirty": bool(diff),
        "diff": diff,
        "root": str(root),
        "subdir": project_root.relative_to(root).as_posix() if project_root != root else "",
        "untracked": untracked,
    }


def _untracked_diff(root: Path, names: list[str]) -> str:
    """New files as ``git apply``-able additions; big or binary ones are only named."""
    parts: list[str] = []
    for name in sorted(names):
        path = root / name
        if ".qflow/" in f"{name}/" or not path.is_file():
            continue
        try:
            if path.stat().st_size > _UNTRACKED_MAX:
                continue
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        lines = text.splitlines(keepends=True)
        if not lines:
            continue
        body = "".join("+" + line for line in lines)
        if not text.endswith("\n"):
            body += "\n\\ No newline at end of file\n"
        parts.append(
            f"diff --git a/{name} b/{name}\nnew file mode 100644\n--- /dev/null\n"
            f"+++ b/{name}\n@@ -0,0 +1,{len(lines)} @@\n{body}"
        )
    return "".join(parts)


# -- snapshot outside git ----------------------------------------------------------------------


def source_files(root: Path) -> list[Path]:
    """Source files under ``root``, sorted; hidden folders, caches and virtualenvs skipped."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d not in _SKIP_DIRS
            and not (here / d / "pyvenv.cfg").exists()
        )
        for name in sorted(files):
            path = here / name
            if path.suffix in SOURCE_SUFFIXES and not name.startswith("."):
                found.append(path)
    return found


def source_snapshot(root: Path) -> bytes | None:
    """A reproducible tar.gz of the source files (same files → same bytes → same hash), or
    None when there are none."""
    files = source_files(root)
    if not files:
        return None
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if len(data) > SNAPSHOT_FILE_MAX or total + len(data) > SNAPSHOT_TOTAL_MAX:
                continue
            total += len(data)
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0)


def extract_snapshot(data: bytes, target: Path) -> None:
    """Unpack a ``source_snapshot`` into ``target`` (regular files only, no escaping paths)."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r") as tar:
        tar.extractall(target, filter="data")


# -- packages ----------------------------------------------------------------------------------


def _interpreter_key() -> str:
    return hashlib.sha256(interpreter_key().encode()).hexdigest()


def packages_digest(packages: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(packages, sort_keys=True).encode()).hexdigest()


def scan_packages() -> dict[str, str]:
    """Installed distributions (name → version), the first one on ``sys.path`` winning."""
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name, version = name_and_version(dist)
        if name:
            found.setdefault(name.lower().replace("_", "-"), version)
    return dict(sorted(found.items()))


def installed_packages(cache_dir: Path | None = None) -> tuple[str, dict[str, str]]:
    """``(hash, packages)``, from memory or a disk cache when ``sys.path`` has not changed."""
    facts = _interpreter(cache_dir)
    return facts["hash"], facts["packages"]


def _interpreter(cache_dir: Path | None) -> dict[str, Any]:
    """The package list (``packages``, its ``hash``) and ``platform.platform()``: from
    memory, else ``cache_dir``'s or the user's cache file when its key is this process's, else
    computed; then written to the cache files that lacked it (an unwritable one is skipped)."""
    key = _interpreter_key()
    if key in _memo:
        return _memo[key]
    project = cache_dir / _CACHE_FILE if cache_dir is not None else None
    files = [file for file in (project, user_cache_file("environment")) if file is not None]
    missed: list[Path] = []
    facts: dict[str, Any] | None = None
    for file in files:
        try:
            cached = json.loads(file.read_text(encoding="utf-8"))
            if cached.get("key") == key:
                facts = {
                    "hash": str(cached["hash"]),
                    "packages": dict(cached["packages"]),
                    "platform": str(cached["platform"]),
                }
                break
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        missed.append(file)
    if facts is None:
        packages = scan_packages()
        facts = {
            "hash": packages_digest(packages),
            "packages": packages,
            "platform": platform.platform(),
        }
    for file in missed:
        write_cache(file, {"key": key, **facts})
    _memo[key] = facts
    return facts


def package_changes(old: dict[str, str], new: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Packages ``added`` (name → version), ``removed`` and ``changed`` (name → [old, new])."""
    return {
        "added": {k: v for k, v in new.items() if k not in old},
        "removed": {k: v for k, v in old.items() if k not in new},
        "changed": {k: [old[k], new[k]] for k in old.keys() & new.keys() if old[k] != new[k]},
    }


# -- storing -----------------------------------------------------------------------------------


class _Ref(Protocol):
    key: str


class BlobSink(Protocol):
    """The part of ``ArtifactStore`` that ``persist`` uses."""

    def put_bytes(self, data: bytes) -> Any: ...

    def exists(self, key: str) -> bool: ...


_saved: set[str] = set()
_SAVED_FILE = "environments-saved.txt"


def _put(blobs: BlobSink, data: bytes) -> str:
    key = hashlib.sha256(data).hexdigest()
    if not blobs.exists(key):
        stored: _Ref = blobs.put_bytes(data)
        key = stored.key
    return key


def _already_saved(marker: str, cache_dir: Path | None) -> bool:
    if marker in _saved:
        return True
    if cache_dir is not None:
        try:
            lines = (cache_dir / _SAVED_FILE).read_text(encoding="utf-8").split()
        except OSError:
            return False
        _saved.update(lines)
    return marker in _saved


def _mark_saved(marker: str, cache_dir: Path | None) -> None:
    _saved.add(marker)
    if cache_dir is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            with (cache_dir / _SAVED_FILE).open("a", encoding="utf-8") as file:
                file.write(marker + "\n")
        except OSError:
            pass


def persist(
    captured: dict[str, Any],
    blobs: BlobSink,
    save_packages: Callable[[str, dict[str, str]], None],
    *,
    store_url: str,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Store the diff, snapshot and package list once; return the run's small ``meta`` part.

    ``save_packages(hash, packages)`` (``MetadataStore.save_environment``) is called only for
    a package list not yet saved in the store at ``store_url``, so a run start normally opens
    no extra database connection.
    """
    meta = {k: v for k, v in captured.items() if k not in ("git", "snapshot", "packages")}
    meta["packages_count"] = len(captured["packages"])
    digest = captured["packages_hash"]
    marker = hashlib.sha256(f"{store_url}\n{digest}".encode()).hexdigest()
    if not _already_saved(marker, cache_dir):
        save_packages(digest, captured["packages"])
        _mark_saved(marker, cache_dir)
    git = captured.get("git")
    if git is not None:
        diff: str = git["diff"]
        git = {k: v for k, v in git.items() if k != "diff"}
        git["diff"] = _put(blobs, diff.encode()) if diff else None
    meta["git"] = git
    snapshot = captured.get("snapshot")
    meta["snapshot"] = _put(blobs, snapshot) if snapshot else None
    return meta
