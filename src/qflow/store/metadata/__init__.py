"""Run, step, metric and lineage metadata in SQLite or PostgreSQL."""
