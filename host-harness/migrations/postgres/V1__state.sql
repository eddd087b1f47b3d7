-- The component's key-value state (the `state` import).
CREATE TABLE state (
    key TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value BYTEA NOT NULL,
    updated_at BIGINT NOT NULL DEFAULT extract(epoch FROM now())::BIGINT
);
