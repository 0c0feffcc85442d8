"""Answering: a conversation in, a cited answer out (standalone question, prompt, generation,
citations, provenance, cache, feedback). Guards are handed in; nothing here knows HTTP."""
