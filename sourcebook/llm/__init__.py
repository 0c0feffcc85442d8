"""The model server's operations: local model folders, the vLLM process, its supervision and speed."""
