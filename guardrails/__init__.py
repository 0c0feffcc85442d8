"""The trust layer: checks on questions (injection, secrets, PII) and on answers (citations,
groundedness, canary leaks, instructions followed from passages). ``citations`` is a ``Guard``
(``answer.types``); the rest are pure functions over ``guardrails.types``, not wired in yet."""
