-- Webhook subscriptions of the backend, and the durable outbox of their deliveries.
CREATE TABLE webhook_subscriptions (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    -- The whsec_ signing secret (Standard Webhooks); shown once, when the subscription is made.
    secret TEXT NOT NULL,
    -- NULL: events of every organization.
    organization_id BIGINT,
    -- JSON array of event types.
    event_types TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One row per event and subscription: the same webhook-id on every attempt. Delivered in seq
-- order per subscription and room; a row waits while an earlier one of its room is pending.
CREATE TABLE webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    chatroom_id BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    -- What the event came from (a homeserver event id, a change): emitted twice, delivered once.
    source TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT,
    last_attempt_at BIGINT,
    last_status_code BIGINT,
    last_error TEXT,
    delivered_at BIGINT,
    UNIQUE (subscription_id, source, event_type)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_room_order
    ON webhook_deliveries (subscription_id, chatroom_id, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (subscription_id, seq);
