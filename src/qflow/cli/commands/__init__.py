"""One module per noun: run, runs (list/show/logs), graph."""
