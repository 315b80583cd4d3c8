"""Benchmark cases, one module per category (see casebook.py)."""
