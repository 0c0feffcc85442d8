DROP TABLE IF EXISTS usage, feedback, answers, chunks, documents, embedding_spaces, api_keys, tenants;
