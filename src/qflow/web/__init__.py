"""The tracking server and web dashboard: a FastAPI app (``create_app``) over the stores.

``serve`` and ``Settings`` are the public surface the CLI (``qflow ui``, ``qflow server``)
uses; everything else here is internal to the server (an import-linter contract keeps the CLI
out of it). Import ``qflow.web.app`` only when a server starts: it needs the ``server`` extra.
"""

from qflow.web.server import serve
from qflow.web.settings import Settings

__all__ = ["Settings", "serve"]
