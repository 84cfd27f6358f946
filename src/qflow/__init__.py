"""QFlow: plain Python steps and workflows, traced into a graph, cached, tracked, run anywhere.

```python
import qflow as qf

@qf.step
def double(x: int) -> int:
    return 2 * x

@qf.workflow
def pipeline(cfg):
    return double(cfg.n)

run = qf.run(pipeline, config={"n": 21})
```

Names are imported on first use, so ``import qflow`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Client": "qflow.client",
    "DataFile": "qflow.dsl",
    "Failed": "qflow.dsl",
    "QFlowError": "qflow.errors",
    "instantiate": "qflow.config",
    "log_artifact": "qflow.tracking.api",
    "log_figure": "qflow.tracking.api",
    "log_metric": "qflow.tracking.api",
    "log_metrics": "qflow.tracking.api",
    "log_param": "qflow.tracking.api",
    "log_params": "qflow.tracking.api",
    "models": "qflow.registry.api",
    "report": "qflow.tracking.report",
    "run": "qflow.client",
    "set_tag": "qflow.tracking.api",
    "step": "qflow.dsl",
    "when": "qflow.dsl",
    "workflow": "qflow.dsl",
}

# Exported as modules: ``qf.models`` is ``qflow.registry.api`` itself.
_MODULE_EXPORTS = frozenset({"models"})

__all__ = [
    "Client",
    "DataFile",
    "Failed",
    "QFlowError",
    "__version__",
    "instantiate",
    "log_artifact",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "models",
    "report",
    "run",
    "set_tag",
    "step",
    "when",
    "workflow",
]

if TYPE_CHECKING:
    from qflow.client import Client, run
    from qflow.config import instantiate
    from qflow.dsl import DataFile, Failed, step, when, workflow
    from qflow.errors import QFlowError
    from qflow.registry import api as models
    from qflow.tracking.api import (
        log_artifact,
        log_figure,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        set_tag,
    )
    from qflow.tracking.report import report


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qflow' has no attribute {name!r}")
    target = importlib.import_module(module)
    value = target if name in _MODULE_EXPORTS else getattr(target, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
