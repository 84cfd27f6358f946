"""Every error QFlow raises on purpose.

Errors a user can cause are ``QFlowError`` subclasses whose message names the thing, says what
is wrong and how to fix it. The CLI prints them on one line without a traceback.

```
QFlowError
├── ConfigError                     bad config file or override
│   └── NotAProjectError            a read command run outside any QFlow project
├── TraceError                      the workflow function cannot be traced
│   ├── HandleMisuseError           a step's future output used as a plain value
│   ├── StepSignatureError          missing input, unknown keyword (also a TypeError)
│   └── WorkflowReturnError         the workflow returns something that is not step output
├── GraphValidationError            cycles, duplicate names
├── NestedStepError                 a step called while another step runs
├── NotFoundError (KeyError)
│   ├── RunNotFoundError
│   ├── StepNotFoundError
│   ├── WorkflowNotFoundError
│   ├── ArtifactNotFoundError
│   └── ModelNotFoundError          no registered model, version or alias of this name
├── ModelIntegrityError             a model's bytes do not match its registry record
├── ArtifactIntegrityError (ValueError)  bytes that do not match their key or size, or a blob
│                                   path that is not a regular file (symlink, folder)
├── SignatureMismatchError (ValueError)  model input that does not fit the model's signature
├── SerializationError              a step output that cannot be stored
├── InvalidNameError (ValueError)   a param/metric/tag/artifact name that cannot be stored
├── InvalidValueError (ValueError)  a metric value that is not a number
├── StoreError                      metadata or artifact store unreachable or broken
├── TrackerError                    an external tracker (MLflow, W&B) refused or is unreachable
├── StepFailedError                 user code in a step raised (cause attached)
├── RunKilledError                  the run was interrupted (Ctrl-C, SIGTERM)
├── MissingExtraError (ImportError) an optional dependency is not installed
└── QFlowInternalError              a bug in QFlow itself
```
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Names among ``choices`` that look like ``word``, best first."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A "Did you mean" line, or an empty string when nothing is close."""
    matches = close_matches(word, choices)
    return f"\nDid you mean: {', '.join(matches)}?" if matches else ""


class QFlowError(Exception):
    """Root of every error QFlow raises on purpose."""

    exit_code = 1


class ConfigError(QFlowError):
    """A config file or override is malformed or names an unknown key."""


class NotAProjectError(ConfigError):
    """A command that reads a project's runs was started outside any QFlow project."""

    def __init__(self, message: str, *, folder: str = "") -> None:
        super().__init__(message)
        self.folder = folder

    @classmethod
    def for_folder(cls, folder: object, *, missing: bool = False) -> NotAProjectError:
        what = (
            "This folder does not exist"
            if missing
            else "Neither it nor a parent has a pyproject.toml with [tool.qflow] or a .qflow folder"
        )
        return cls(
            f"Not a QFlow project: {str(folder)!r}. {what}.\n"
            "Hint: cd into a project, pass --project, or run qflow new",
            folder=str(folder),
        )


class TraceError(QFlowError):
    """The workflow function cannot be turned into a graph."""


class HandleMisuseError(TraceError):
    """A step's future output was used as if it were already computed."""


class StepSignatureError(TraceError, TypeError):
    """A step or workflow was called with arguments that do not fit its signature."""


class WorkflowReturnError(TraceError):
    """A workflow returned something other than step outputs or structures of them."""


class GraphValidationError(QFlowError):
    """The traced graph breaks a rule (cycle, duplicate name)."""


class NestedStepError(QFlowError):
    """A step was called from inside another running step."""


class NotFoundError(QFlowError, KeyError):
    """Something looked up by name or id does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RunNotFoundError(NotFoundError):
    """No run has this id."""


class StepNotFoundError(NotFoundError):
    """The run or workflow has no step of this name."""


class WorkflowNotFoundError(NotFoundError):
    """No workflow can be found under this name."""


class ArtifactNotFoundError(NotFoundError):
    """No artifact has this key."""


class ModelNotFoundError(NotFoundError):
    """No registered model, version or alias matches this reference."""


class ModelIntegrityError(QFlowError):
    """A model's stored bytes do not hash to what the registry recorded; it is not loaded."""


class ArtifactIntegrityError(QFlowError, ValueError):
    """Bytes that do not hash to their key or have another size, or a blob path that is not a
    regular file inside the store (a symlink, a folder); the bytes are not used."""

    def __init__(self, message: str, *, key: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.detail = detail
        """What is wrong in a few words (e.g. "a symlink"), for reports such as qflow doctor."""


class SignatureMismatchError(QFlowError, ValueError):
    """Model input that does not fit the model's signature; ``.field`` names the culprit."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


class SerializationError(QFlowError):
    """A value cannot be serialized into the artifact store."""


class InvalidNameError(QFlowError, ValueError):
    """A name for a param, metric, tag, step or artifact cannot be stored."""


class InvalidValueError(QFlowError, ValueError):
    """A value has the wrong type for where it is logged."""


class StoreError(QFlowError):
    """The metadata or artifact store cannot be used."""


class TrackerError(QFlowError):
    """An external tracker cannot be reached or refuses what QFlow sends (``qflow sync``)."""


class StepFailedError(QFlowError):
    """User code inside a step raised; the original exception is the ``__cause__``."""

    def __init__(self, step: str, run_id: str, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.run_id = run_id


class RunKilledError(QFlowError):
    """The run was interrupted (Ctrl-C, SIGTERM); it is recorded as ``killed``."""

    exit_code = 130


class MissingExtraError(QFlowError, ImportError):
    """An optional dependency is missing; the message gives the pip line."""

    @classmethod
    def for_extra(cls, module: str, extra: str) -> MissingExtraError:
        return cls(
            f"{module!r} is not installed, and this feature needs it.\n"
            f"Hint: pip install 'qflow-framework[{extra}]'"
        )


class QFlowInternalError(QFlowError):
    """A bug in QFlow; please report it."""

    exit_code = 3
