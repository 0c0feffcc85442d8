"""Retrieval: keyword (exact BM25) and vector arms fused in one SQL statement, rewriting, reranking."""
