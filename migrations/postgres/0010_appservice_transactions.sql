-- Transactions the homeserver pushed (appservice API), kept before they are answered: the same
-- txn id, retried by Synapse or received by two replicas, is taken once.
CREATE TABLE appservice_transactions (
    txn_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    events BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    processed_at BIGINT
);
CREATE INDEX appservice_transactions_unprocessed ON appservice_transactions (received_at) WHERE processed_at IS NULL;
