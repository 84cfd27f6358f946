"""Workflows of the example project."""
