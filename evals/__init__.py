"""Evaluation suites: retrieval metrics on judged sets (and, later, answer metrics), with baselines."""
