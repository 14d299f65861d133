"""Benchmarks against a running server (see bench/README.md)."""
