"""Model registry: versions of step outputs with aliases, signatures and hash-checked loading.

``QFlowRegistry`` keeps them in the project's metadata store; ``MlflowRegistry``
(``qflow.registry.mlflow_registry``) in an MLflow Model Registry. Both are ``ModelRegistry``s.

Names are imported on first use, so loading ``qflow.registry.plugin`` (QFlow's
``builtin-registries`` entry point, read by every command) does not load SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ModelRef": "qflow.registry.reference",
    "ModelRegistry": "qflow.registry.protocol",
    "QFlowRegistry": "qflow.registry.builtin",
    "Signature": "qflow.registry.signature",
    "parse_ref": "qflow.registry.reference",
}

__all__ = ["ModelRef", "ModelRegistry", "QFlowRegistry", "Signature", "parse_ref"]

if TYPE_CHECKING:
    from qflow.registry.builtin import QFlowRegistry
    from qflow.registry.protocol import ModelRegistry
    from qflow.registry.reference import ModelRef, parse_ref
    from qflow.registry.signature import Signature


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qflow.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
