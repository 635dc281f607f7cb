"""Benchmarks, run by command (never as timed tests): ``python -m benchmarks.<name>``."""
