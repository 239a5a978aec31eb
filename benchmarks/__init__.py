"""Side-by-side measurements (never part of the default test run): ``python -m benchmarks``."""
