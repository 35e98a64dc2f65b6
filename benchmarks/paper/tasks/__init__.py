"""Benchmark tasks: each a `Task` (see `base.py`) that every method trains the same way."""
