"""The pluggy markers for QFlow hooks."""

import pluggy

PROJECT_NAME = "qflow"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
