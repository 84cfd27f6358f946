"""Which files a step, or a script run by ``qflow exec``, reads and writes while it runs.

One mechanism serves both. An audit hook (``sys.addaudithook``, ``open`` events) sees every
file opened through Python: ``open``, ``io.open``, ``os.open``, and the libraries that use them
(numpy's ``load``/``loadtxt``/``fromfile``/``memmap``, pandas' ``read_csv``/``read_json``/
``read_feather``, pickle, PIL, torch …). pyarrow opens files in C++, so its public readers and
writers (``parquet.read_table``/``ParquetFile``/``write_table``, ``csv.read_csv``,
``feather.read_table``, ``dataset.dataset``, ``memory_map``, ``OSFile`` …, which pandas'
``read_parquet`` and ``to_parquet`` go through) are wrapped the moment pyarrow's modules are
imported.

Audit hooks cannot be removed, so one hook is installed per process and routes events to the
capture of the step running in the current context (a ``ContextVar``; a thread the step
started, which does not inherit it, goes to the only active capture). With no capture active,
the hook returns after one comparison and one list check.

Each file read is hashed (sha256) when it is first opened, through a stat cache that, as git's
index does, re-hashes a file only when its size or mtime changed (and never trusts an entry
whose mtime is within ``RACY_NS`` of the time it was hashed). Files a step wrote before reading
them are its own output, not a read. Python source and bytecode, the interpreter's own folders
(stdlib, site-packages), QFlow's store (``.qflow/``) and system folders are never recorded.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shlex
import site
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    from qflow.store.metadata.records import DataFileRecord

READ = "read:"
WRITE = "write:"
"""Prefixes of the ``name`` of a data-file record made by the capture (``read:data/x.csv``);
``qf.DataFile`` arguments keep their argument's name, which cannot contain a colon."""

CLIENT = "client:"
CLIENT_RUNS = "client:runs "
CLIENT_RUN = "client:run "
CLIENT_LOAD = "client:load "
"""Records of what a step read through ``qf.Client`` (name and path alike): a query of runs
(``client:runs {json}``, ``runs_digest`` of the runs it returned), a run looked up by id
(``client:run ID``) and an output loaded (``client:load RUN/STEP.OUTPUT``, the artifact's
key). A cache hit is taken only if each recorded query still returns the same runs."""

RACY_NS = 2_000_000_000
"""A stat entry is trusted only for files last modified this long before they were hashed."""

SYSTEM_DIRS = ("/proc", "/sys", "/dev", "/etc", "/run", "/usr")
CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyi", ".pyd", ".so", ".pth")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileAccess:
    """One file a step read (or wrote): its path as recorded and its content hash.

    ``path`` is relative to the project root (POSIX) for a file under it, absolute otherwise.
    """

    path: str
    sha256: str
    size: int
    mtime_ns: int
    write: bool = False

    def to_record(self) -> DataFileRecord:
        from qflow.store.metadata.records import DataFileRecord

        if self.path.startswith(CLIENT):
            return DataFileRecord(self.path, self.path, self.sha256, self.size)
        return DataFileRecord(
            f"{WRITE if self.write else READ}{self.path}", self.path, self.sha256, self.size
        )


def is_read_record(name: str) -> bool:
    return name.startswith(READ)


def is_client_record(name: str) -> bool:
    return name.startswith(CLIENT)


def runs_digest(runs: Iterable[tuple[str, str]]) -> str:
    """What a recorded query of runs is compared by: the sha256 of the runs' ids and statuses,
    in order (a run read while it was running and since finished is not what the step saw)."""
    return hashlib.sha256("\n".join(f"{i} {s}" for i, s in runs).encode()).hexdigest()


def note_client_read(path: str, sha256: str, size: int) -> None:
    """``qf.Client`` read something (``CLIENT_*`` record ``path``) in the running step:
    record it with the step's file reads. Does nothing outside a step (nor in a script run
    by ``qflow exec``, whose capture keeps the files it read)."""
    capture = current_capture()
    if capture is not None and capture.forward is None and capture.log_dir is None:
        capture.client.setdefault(path, FileAccess(path, sha256, size, 0))


def is_write_record(name: str) -> bool:
    return name.startswith(WRITE)


def file_digest(path: str | Path) -> tuple[str, int]:
    """sha256 and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class StatCache:
    """sha256 of files by (size, mtime): ``digest`` re-hashes only files whose stat changed."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[int, int, str]] = {}
        self.loaded: set[Path] = set()
        self.dirty = False

    def digest(self, path: str) -> tuple[str, int, int] | None:
        """(sha256, size, mtime_ns) of the file at absolute ``path``; None if it is not a file."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not _is_regular(st.st_mode):
            return None
        known = self.entries.get(path)
        if known is not None and known[0] == st.st_size and known[1] == st.st_mtime_ns:
            return known[2], st.st_size, st.st_mtime_ns
        hashed_at = time.time_ns()
        try:
            sha, size = file_digest(path)
        except OSError:
            return None
        self.learn(path, sha, size, st.st_mtime_ns, hashed_at)
        return sha, size, st.st_mtime_ns

    def learn(self, path: str, sha: str, size: int, mtime_ns: int, hashed_at_ns: int) -> None:
        """Remember a hash made at ``hashed_at_ns``, unless the file was modified so shortly
        before that a later change could keep the same size and mtime (git's racy case)."""
        if mtime_ns < hashed_at_ns - RACY_NS:
            if self.entries.get(path) != (size, mtime_ns, sha):
                self.entries[path] = (size, mtime_ns, sha)
                self.dirty = True
        elif self.entries.pop(path, None) is not None:
            self.dirty = True

    def load(self, state_dir: Path) -> None:
        """Merge the cache saved in ``state_dir`` (once per folder and process)."""
        if state_dir in self.loaded:
            return
        self.loaded.add(state_dir)
        try:
            saved = json.loads((state_dir / "stat-cache.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(saved, dict):
            for path, entry in saved.items():
                if isinstance(entry, list) and len(entry) == 3:
                    self.entries.setdefault(path, (int(entry[0]), int(entry[1]), str(entry[2])))

    def save(self, state_dir: Path) -> None:
        """Write the cache to ``state_dir`` atomically, when it changed."""
        if not self.dirty or not state_dir.is_dir():
            return
        target = state_dir / "stat-cache.json"
        tmp = target.with_name(f".stat-cache.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.entries), encoding="utf-8")
            os.replace(tmp, target)
            self.dirty = False
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


STAT_CACHE = StatCache()


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


@functools.cache
def _interpreter_dirs() -> tuple[str, ...]:
    """Folders of the interpreter and installed packages, each ending with a separator."""
    dirs: set[str] = set(SYSTEM_DIRS)
    for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
        paths = sysconfig.get_paths(vars=scheme_vars)
        dirs.update(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)
    with contextlib.suppress(AttributeError):
        dirs.update(site.getsitepackages())
    with contextlib.suppress(AttributeError):
        dirs.add(site.getusersitepackages())
    dirs.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return tuple(os.path.join(os.path.abspath(d), "") for d in dirs if d)


def relative_to_root(path: str, root: str) -> str:
    """``path`` relative to ``root`` (POSIX) when under it, else unchanged."""
    prefix = os.path.join(root, "")
    if root and path.startswith(prefix):
        return Path(path[len(prefix) :]).as_posix()
    return path


def absolute(recorded: str, root: str | Path) -> str:
    """The absolute path of a recorded path (relative ones are under ``root``)."""
    return recorded if os.path.isabs(recorded) else os.path.join(str(root), recorded)


@dataclass(eq=False)
class Capture:
    """The files opened while it is active: reads (hashed when first opened) and writes.

    ``exclude`` lists more folders (or files) never to record. With ``log_dir``, a capture
    that finds itself in a forked child process writes what it sees there (``forward``), for
    the parent to merge (``qflow exec``)."""

    root: str
    exclude: tuple[str, ...] = ()
    log_dir: str | None = None
    reads: dict[str, FileAccess] = field(default_factory=dict)
    writes: dict[str, None] = field(default_factory=dict)
    forward: Any = None
    client: dict[str, FileAccess] = field(default_factory=dict)
    """What the step read through ``qf.Client`` (``note_client_read``)."""
    programs: list[str] = field(default_factory=list)
    """The programs of the subprocesses started (recorded with a ``log_dir`` only)."""

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root) if self.root else ""
        exclude = self.exclude
        if not all(map(os.path.isabs, exclude)):  # relative to the working folder, now
            exclude = tuple(map(os.path.abspath, exclude))
        self._ignored, self._excluded_files = _exclusions(exclude)

    def ignores(self, path: str) -> bool:
        return (
            path.endswith(CODE_SUFFIXES)
            or path.startswith(self._ignored)
            or path in self._excluded_files
            or "/__pycache__/" in path
        )

    def opened(self, raw: object, mode: object, flags: object) -> None:
        """An ``open`` audit event (``path, mode, flags``)."""
        if isinstance(raw, int) or raw is None:
            return
        try:
            path = os.path.abspath(os.fsdecode(raw))  # type: ignore[arg-type]
        except TypeError:
            return
        if isinstance(mode, str):
            writing = any(c in mode for c in "wax+")
        else:
            writing = isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
        self.note(path, writing)

    def note(self, path: str, writing: bool) -> None:
        """A file at absolute ``path`` opened for writing or for reading."""
        if path in self.reads or path in self.writes or self.ignores(path):
            return
        if self.forward is not None:
            self.forward.write(f"{'w' if writing else 'r'}\t{path}\n")
            self.writes[path] = None  # seen: not forwarded twice
            return
        if writing:
            self.writes[path] = None
            return
        found = STAT_CACHE.digest(path)
        if found is not None:
            sha, size, mtime = found
            self.reads[path] = FileAccess(relative_to_root(path, self.root), sha, size, mtime)

    def skip(self, path: str) -> None:
        """Never record the file at absolute ``path`` (a ``qf.DataFile``, hashed already)."""
        self._excluded_files = self._excluded_files | {path}

    def note_paths(self, value: object, writing: bool) -> None:
        """A path (``str``/``PathLike``) or a list of them given to a reader or writer; a
        folder read counts as each file in it (a partitioned Parquet dataset)."""
        for path in _paths_in(value):
            if not writing and os.path.isdir(path):
                for folder, _, names in os.walk(path):
                    for name in sorted(names):
                        if not name.startswith((".", "_")):
                            self.note(os.path.join(folder, name), False)
            else:
                self.note(path, writing)

    def accesses(self) -> list[FileAccess]:
        """The reads, then the writes (hashed now: their final content), in opening order."""
        found = list(self.reads.values())
        for path in self.writes:
            digest = STAT_CACHE.digest(path)
            if digest is not None:
                rel = relative_to_root(path, self.root)
                found.append(FileAccess(rel, digest[0], digest[1], digest[2], write=True))
        found.extend(self.client.values())
        return found


@functools.lru_cache(maxsize=64)
def _exclusions(exclude: tuple[str, ...]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The folder prefixes and the files a capture leaving out the absolute paths ``exclude``
    never records (made once per process and exclusions: every mapped item asks)."""
    normalized = [os.path.normpath(e) for e in exclude]
    ignored = _interpreter_dirs() + tuple(os.path.join(e, "") for e in normalized)
    return ignored, frozenset(normalized)


def _paths_in(value: object) -> Iterator[str]:
    if isinstance(value, str | os.PathLike):
        with contextlib.suppress(TypeError, ValueError):
            yield os.path.abspath(os.fsdecode(value))
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, str | os.PathLike):
                yield from _paths_in(item)


# -- routing ------------------------------------------------------------------------------

_current: ContextVar[Capture | None] = ContextVar("qflow_capture", default=None)
_active: list[Capture] = []
_busy = threading.local()
_installed = False


def current_capture() -> Capture | None:
    """The capture events of this context go to (None when nothing is recorded)."""
    if not _active:
        return None
    capture = _current.get()
    if capture is None and len(_active) == 1:
        return _active[0]
    return capture


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _active:
        return
    if event == "open":
        capture = current_capture()
        if capture is None or getattr(_busy, "on", False):
            return
        _busy.on = True
        try:
            capture.opened(*args[:3])
        finally:
            _busy.on = False
    elif event in _SPAWN_EVENTS:
        capture = current_capture()
        if capture is not None and capture.log_dir is not None:
            capture.programs.append(_program(event, args))


_SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"}
)


def _program(event: str, args: tuple[Any, ...]) -> str:
    """The program a subprocess audit event starts (the first word of a shell command)."""
    try:
        if event == "subprocess.Popen":
            program, argv = args[0], args[1]
            if isinstance(argv, str | bytes) and program in (None, argv):
                program = (shlex.split(os.fsdecode(argv)) or ["?"])[0]
            elif program is None:
                program = argv[0]
        elif event == "os.system":
            program = (shlex.split(os.fsdecode(args[0])) or ["?"])[0]
        else:
            program = args[1] if event == "os.spawn" else args[0]
        return os.fsdecode(program)
    except (IndexError, TypeError, ValueError):
        return "?"


LOG_DIR_VARIABLE = "QFLOW_READS_LOG_DIR"
"""Where a Python subprocess of ``qflow exec`` reports what it opens (``runtime/sitehook``)."""


def report_to(log_dir: str) -> None:
    """In a subprocess of a ``qflow exec`` script: forward every file this process opens to
    ``log_dir`` for the script's run to merge (called by ``runtime/sitehook``)."""
    install()
    capture = Capture("", exclude=(log_dir,), log_dir=log_dir)
    capture.forward = open(  # noqa: SIM115 - open for the process's lifetime
        os.path.join(log_dir, f"{os.getpid()}.log"), "a", buffering=1, encoding="utf-8"
    )
    capture.forward.write(f"p\t{os.getpid()}\n")
    _active.append(capture)


def _noted(capture: Capture, value: object, writing: bool) -> None:
    if getattr(_busy, "on", False):
        return
    _busy.on = True
    try:
        capture.note_paths(value, writing)
    finally:
        _busy.on = False


def install() -> None:
    """Install the audit hook and the pyarrow wrappers, once per process (cheap; call it
    before user modules are imported so ``from pyarrow.parquet import read_table`` binds the
    wrapped function)."""
    global _installed
    if _installed:
        return
    _installed = True
    sys.addaudithook(_audit)
    sys.meta_path.insert(0, _ArrowFinder())
    for name in _ARROW_API:
        module = sys.modules.get(name)
        if module is not None:
            _wrap_module(module)
    os.register_at_fork(after_in_child=_after_fork)


class capturing:
    """Send the file events of this context (and of threads it starts, when it is the only
    capture) to ``capture`` while the block runs (a class: cheaper per mapped item than a
    generator)."""

    _token: Token[Capture | None]

    def __init__(self, capture: Capture) -> None:
        self.capture = capture

    def __enter__(self) -> Capture:
        install()
        self._token = _current.set(self.capture)
        _active.append(self.capture)
        return self.capture

    def __exit__(self, *exc: object) -> None:
        _active.remove(self.capture)
        _current.reset(self._token)


def _after_fork() -> None:
    """In a forked child: a capture with a log folder forwards what the child opens."""
    for capture in list(_active):
        if capture.log_dir is not None:
            capture.reads.clear()
            capture.writes.clear()
            capture.forward = open(  # noqa: SIM115 - open for the child's lifetime
                os.path.join(capture.log_dir, f"{os.getpid()}.log"),
                "a",
                buffering=1,
                encoding="utf-8",
            )
            capture.programs.clear()
        else:
            _active.remove(capture)


# -- pyarrow ------------------------------------------------------------------------------

_ARROW_API: dict[str, dict[str, tuple[str, bool]]] = {
    # module: {attribute: (argument holding the path, writes?)}; writers take it second
    "pyarrow": {"memory_map": ("path", False)},
    "pyarrow.parquet": {
        "read_table": ("source", False),
        "read_pandas": ("source", False),
        "read_schema": ("where", False),
        "read_metadata": ("where", False),
        "write_table": ("where", True),
    },
    "pyarrow.csv": {
        "read_csv": ("input_file", False),
        "open_csv": ("input_file", False),
        "write_csv": ("output_file", True),
    },
    "pyarrow.feather": {
        "read_table": ("source", False),
        "read_feather": ("source", False),
        "write_feather": ("dest", True),
    },
    "pyarrow.json": {"read_json": ("input_file", False)},
    "pyarrow.dataset": {"dataset": ("source", False)},
    "pyarrow.orc": {"read_table": ("source", False), "write_table": ("where", True)},
    "pyarrow.ipc": {"open_file": ("source", False), "open_stream": ("source", False)},
}
_ARROW_CLASSES = {"pyarrow.parquet": ("ParquetFile", "ParquetDataset")}


def _wrapped(fn: Callable[..., Any], argument: str, writing: bool) -> Callable[..., Any]:
    if getattr(fn, "__qflow_reads__", False):
        return fn

    position = 1 if writing else 0

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if _active:
            capture = current_capture()
            if capture is not None:
                target = args[position] if len(args) > position else kwargs.get(argument)
                _noted(capture, target, writing)
        return fn(*args, **kwargs)

    call.__qflow_reads__ = True  # type: ignore[attr-defined]
    return call


def _wrap_module(module: ModuleType) -> None:
    if module.__name__ == "pyarrow":
        _wrap_os_file(module)
    for attribute, (argument, writing) in _ARROW_API.get(module.__name__, {}).items():
        fn = getattr(module, attribute, None)
        if callable(fn):
            setattr(module, attribute, _wrapped(fn, argument, writing))
            core = sys.modules.get(getattr(fn, "__module__", "") or "")
            if core is not None and getattr(core, attribute, None) is fn:
                setattr(core, attribute, getattr(module, attribute))
    for name in _ARROW_CLASSES.get(module.__name__, ()):
        cls = getattr(module, name, None)
        init = getattr(cls, "__init__", None)
        if cls is not None and init is not None and not getattr(init, "__qflow_reads__", False):

            def reader_init(self: Any, *args: Any, _original: Any = init, **kwargs: Any) -> None:
                if _active:
                    capture = current_capture()
                    if capture is not None:
                        _noted(capture, args[0] if args else kwargs.get("source"), False)
                _original(self, *args, **kwargs)

            reader_init.__qflow_reads__ = True  # type: ignore[attr-defined]
            functools.update_wrapper(reader_init, init)
            cls.__init__ = reader_init


def _wrap_os_file(module: ModuleType) -> None:
    """``pyarrow.OSFile`` (a Cython class, which pandas' ``to_parquet`` opens its target
    with) becomes a subclass that notes the file it opens."""
    base = getattr(module, "OSFile", None)
    if base is None or getattr(base, "__qflow_reads__", False):
        return

    class OSFile(base):  # type: ignore[misc, valid-type]
        __qflow_reads__ = True
        __doc__ = base.__doc__

        def __init__(self, path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> None:
            if _active:
                capture = current_capture()
                if capture is not None:
                    _noted(capture, path, any(c in mode for c in "wa"))

    OSFile.__module__ = base.__module__
    setattr(module, "OSFile", OSFile)  # noqa: B010 - a module attribute


class _ArrowFinder:
    """A meta-path finder that lets the real finders load pyarrow's reader modules, then wraps
    their readers (it answers for no other module)."""

    _loading: ClassVar[set[str]] = set()

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in _ARROW_API or name in self._loading:
            return None
        import importlib.util

        self._loading.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._loading.discard(name)
        loader = spec.loader if spec is not None else None
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return None
        exec_module = loader.exec_module

        class _Loader:
            def __getattr__(self, name: str) -> Any:
                return getattr(loader, name)

            def create_module(self, spec: ModuleSpec) -> ModuleType | None:
                return loader.create_module(spec)  # type: ignore[union-attr]

            def exec_module(self, module: ModuleType) -> None:
                exec_module(module)
                _wrap_module(module)

        spec.loader = _Loader()  # type: ignore[assignment]
        return spec


# -- records -------------------------------------------------------------------------------


def changed_reads(records: Iterable[DataFileRecord], root: str | Path, limit: int = 3) -> list[str]:
    """Why recorded reads no longer hold: ``file data/x.csv read by the step changed`` (or
    ``was deleted``), at most ``limit`` of them; empty when every read is unchanged."""
    reasons: list[str] = []
    more = 0
    for record in records:
        if not is_read_record(record.name):
            continue
        found = STAT_CACHE.digest(absolute(record.path, root))
        if found is not None and found[0] == record.sha256:
            continue
        if len(reasons) == limit:
            more += 1
            continue
        verb = "changed" if found is not None else "was deleted"
        reasons.append(f"file {record.path} read by the step {verb}")
    if more:
        reasons.append(f"and {more} more files read by the step")
    return reasons


def learn(accesses: Iterable[FileAccess], root: str | Path, hashed_at: float) -> None:
    """Remember the hashes a worker made (at or after ``hashed_at``) in this process's cache."""
    for access in accesses:
        if access.path.startswith(CLIENT):
            continue
        STAT_CACHE.learn(
            absolute(access.path, root),
            access.sha256,
            access.size,
            access.mtime_ns,
            int(hashed_at * 1e9),
        )
