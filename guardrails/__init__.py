"""The trust layer: checks on questions (injection, secrets, PII) and on answers (groundedness,
canary leaks, instructions followed from passages), as pure functions over ``guardrails.types``."""
