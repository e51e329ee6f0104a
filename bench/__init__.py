"""Benchmarks of pinned's deploys on sandbox hosts: `python -m bench` (see bench/README.md)."""
