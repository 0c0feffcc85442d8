-- Undoes 0008_guardrails: the policy history and the review queue go with their tables.
DROP TABLE IF EXISTS reviews, tenant_policies;
