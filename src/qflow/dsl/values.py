"""Value types steps see: data files whose hash is recorded, and caught failures."""

from __future__ import annotations

from dataclasses import dataclass


class DataFile(str):
    """A path to an input data file. Annotate a step parameter with it (``path: qf.DataFile``)
    and the file's SHA-256 is recorded with the step run and is part of its cache key, so
    editing the file re-runs the step and everything downstream."""

    __slots__ = ()


@dataclass(frozen=True)
class Failed:
    """What a step downstream of a failed ``@qf.step(catch=True)`` step (or mapped item)
    receives instead of a value. It is falsy, so ``[s for s in scores if s]`` drops failures."""

    step: str
    error: str

    def __bool__(self) -> bool:
        return False
