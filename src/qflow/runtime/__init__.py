"""Executors, the scheduler, the cache and resume: how a traced graph runs."""
