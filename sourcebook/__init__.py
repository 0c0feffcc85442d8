"""Sourcebook: a self-hosted enterprise RAG knowledge assistant.

This package holds what every stage shares: settings, errors, the database (pool, embedded server,
migrations), telemetry, model locations and the command line.
"""

__version__ = "0.1.0"
