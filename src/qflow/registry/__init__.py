"""Model registry: versions of step outputs with aliases, signatures and hash-checked loading.

``QFlowRegistry`` keeps them in the project's metadata store; ``MlflowRegistry``
(``qflow.registry.mlflow_registry``) in an MLflow Model Registry. Both are ``ModelRegistry``s.
"""

from qflow.registry.builtin import QFlowRegistry
from qflow.registry.protocol import ModelRegistry
from qflow.registry.reference import ModelRef, parse_ref
from qflow.registry.signature import Signature

__all__ = ["ModelRef", "ModelRegistry", "QFlowRegistry", "Signature", "parse_ref"]
