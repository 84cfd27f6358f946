"""A served model that follows its alias: when ``churn@production`` moves, the next request
after the check interval loads the new version (hash-checked) and swaps it in."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qflow.registry.reference import ModelRef, parse_ref
from qflow.registry.signature import Signature

if TYPE_CHECKING:
    from qflow.registry.builtin import QFlowRegistry
    from qflow.registry.mlflow_registry import MlflowRegistry
    from qflow.store.metadata.records import ModelVersion

    Registry = QFlowRegistry | MlflowRegistry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """One loaded version: its record, the model object and its signature (if any)."""

    record: ModelVersion
    model: Any
    signature: Signature | None
    loaded_at: float


def load(registry: Registry, version: ModelVersion) -> Loaded:
    signature = Signature.from_dict(version.signature) if version.signature else None
    return Loaded(version, registry.load_version(version), signature, time.time())


class LiveModel:
    """The model behind a reference; aliases are re-checked at most every ``check_every``
    seconds (one indexed query), never when ``pin`` is set or the ref names a version."""

    def __init__(
        self,
        registry: Registry,
        ref: str | ModelRef,
        *,
        pin: bool = False,
        check_every: float = 2.0,
    ) -> None:
        self.registry = registry
        self.ref = parse_ref(ref) if isinstance(ref, str) else ref
        self.follows = not pin and self.ref.version is None
        self.check_every = check_every
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self.current = load(registry, registry.get(str(self.ref)))
        self.error: str | None = None
        """Why the version the alias points at now could not be served (None: it is)."""
        self.wanted: int | None = None
        """The version the alias points at, when it is not the one served."""

    def get(self) -> Loaded:
        """The model to use now (a cheap call: usually just a clock read)."""
        if self.follows and time.monotonic() - self._checked >= self.check_every:
            self.refresh()
        return self.current

    def refresh(self) -> None:
        """Load the version the alias points at now, if it moved; keep serving on failure."""
        if not self._lock.acquire(blocking=False):
            return  # another request is refreshing; serve the current model meanwhile
        try:
            self._checked = time.monotonic()
            try:
                _, version = self.registry.resolve(self.ref)
                if version != self.current.record.version:
                    self.wanted = version
                    record = self.registry.get(f"{self.ref.name}/{version}")
                    self.current = load(self.registry, record)
                    logger.warning("%s now serves version %s", self.ref, version)
                self.error, self.wanted = None, None
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                logger.exception(
                    "could not refresh %s; still serving version %s",
                    self.ref,
                    self.current.record.version,
                )
        finally:
            self._lock.release()
