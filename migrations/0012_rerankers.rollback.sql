DROP TABLE tenant_rerankers;

DROP TABLE tuning_questions;
