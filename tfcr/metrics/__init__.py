"""Metrics: the test queries, per-query retrieval metrics, exact (brute-force)
evaluation of a model, and bootstrap confidence intervals over queries."""
