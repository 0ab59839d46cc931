"""Benchmark evaluation: the metrics (metrics/) and the benchmark loaders (benchmarks/)."""
