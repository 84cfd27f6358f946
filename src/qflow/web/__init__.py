"""The tracking server and web dashboard: a FastAPI app (``create_app``) over the stores.

Import ``qflow.web.app`` only when a server starts: it needs the ``server`` extra.
"""
