-- The host's own records: received documents on their way into the inbox,
-- and the asynchronous MDNs owed to partners.
CREATE TABLE deliveries (
    partner TEXT NOT NULL,
    message_id TEXT NOT NULL,
    staged TEXT NOT NULL,
    file_name TEXT NOT NULL,
    path TEXT,
    bytes BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('staged', 'delivered')),
    received_at BIGINT NOT NULL DEFAULT extract(epoch FROM now())::BIGINT,
    seq BIGSERIAL NOT NULL,
    PRIMARY KEY (partner, message_id)
);
CREATE INDEX deliveries_staged ON deliveries (state, seq);
CREATE TABLE outbound_mdns (
    id BIGSERIAL PRIMARY KEY,
    partner TEXT NOT NULL,
    original_message_id TEXT NOT NULL,
    url TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BYTEA NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT extract(epoch FROM now())::BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL DEFAULT extract(epoch FROM now())::BIGINT,
    settled_at BIGINT
);
CREATE INDEX outbound_mdns_pending ON outbound_mdns (state, next_attempt_at);
CREATE INDEX outbound_mdns_original ON outbound_mdns (partner, original_message_id);
