"""Ingestion: files → parsed elements → chunks → vectors → PostgreSQL, as jobs on a queue."""
