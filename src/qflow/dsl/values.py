"""Value types steps see: data files whose hash is recorded, and caught failures."""

from __future__ import annotations

import os
from dataclasses import dataclass


class DataFile(str):
    """A path to an input data file. Annotate a step parameter with it (``path: qf.DataFile``)
    and the file's SHA-256 is recorded with the step run and is part of its cache key, so
    editing the file re-runs the step and everything downstream.

    ``qf.DataFile(path, keep=True)`` (or ``[tool.qflow] keep-data-files = true`` for every
    data file) also keeps the file's content in the artifact store, up to
    ``[tool.qflow] keep-data-max`` bytes (100 MB), as the run's artifact ``data:<path>``, so
    ``qflow reproduce`` can put it back after it changed or went away.
    """

    keep: bool

    def __new__(cls, path: str | os.PathLike[str], keep: bool = False) -> DataFile:
        value = super().__new__(cls, os.fspath(path))
        value.keep = keep
        return value

    def __getnewargs__(self) -> tuple[str, bool]:  # type: ignore[override]
        return (str(self), self.keep)


@dataclass(frozen=True)
class Failed:
    """What a step downstream of a failed ``@qf.step(catch=True)`` step (or mapped item)
    receives instead of a value. It is falsy, so ``[s for s in scores if s]`` drops failures."""

    step: str
    error: str

    def __bool__(self) -> bool:
        return False
