"""``python -m qflow`` runs the CLI."""

from qflow.cli.app import main

main()
