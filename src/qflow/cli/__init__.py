"""The ``qflow`` command line (typer + rich)."""
