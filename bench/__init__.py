"""Benchmarks: each module prints a table of medians and ratios measured in one run."""
