"""A tiny QFlow plugin for QFlow's own tests."""

from qflow_test_plugin.plugin import Money

__all__ = ["Money"]
