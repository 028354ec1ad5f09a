"""Benchmarks: every figure in the README is produced by one of these commands."""
