-- Idempotency keys: the answer to a POST, stored in the same transaction as its work,
-- so that a retry with the same key gets the same answer and nothing is done twice.
--
-- Keys belong to a caller (a user id, or the admin), not to a show: this small table
-- is the one without show_id (on Citus it would be a local or reference table).
CREATE TABLE idempotency_keys (
    scope        text        NOT NULL CHECK (length(scope) BETWEEN 1 AND 160),
    key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- SHA-256 of method, path and body: the same key with another request is refused.
    fingerprint  bytea       NOT NULL,
    -- Only final answers are stored (2xx and 4xx); a 5xx may be retried for real.
    status       smallint    NOT NULL CHECK (status BETWEEN 200 AND 499),
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
