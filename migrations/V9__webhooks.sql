-- Issue 17, point 5: webhooks, driven from the change feed.

-- What each event is about: the hold and/or booking whose change it records (NULL for
-- blocks and a show's cancellation), and for a cancel whether it ended the booking
-- (a whole cancel) or left it with seats (a partial one). Written by `EventsSql`, the
-- one insert into seat_events; webhooks read them to say which hold or booking changed.
ALTER TABLE seat_events
    ADD COLUMN hold_id    uuid,
    ADD COLUMN booking_id uuid,
    ADD COLUMN ended      boolean;

-- An endpoint: where to send which events of which shows (`shows` NULL: every show),
-- signed with `secret` (`whsec_<base64>`, Standard Webhooks). `routed_*` is the feed
-- position up to which its events were turned into deliveries: routing reads on from
-- there, below the watermark, and moves it in the transaction that inserts them, so a
-- crash repeats no routing and skips none. `failing_since`: a delivery gave up (its
-- retries ran out); cleared by the next success.
CREATE TABLE webhooks (
    id            uuid        PRIMARY KEY,
    url           text        NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    events        text[]      NOT NULL CHECK (cardinality(events) > 0),
    shows         bigint[]    CHECK (cardinality(shows) > 0),
    secret        text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    routed_xid    xid8        NOT NULL,
    routed_id     bigint      NOT NULL,
    failing_since timestamptz
);

-- One event for one endpoint: the body (signed anew at each attempt, the same bytes
-- every time) and the attempts. The oldest pending delivery of an (endpoint, show) is
-- the only one of them that may be sent: each endpoint gets a show's events in feed
-- order. A claim sets `lease_until`/`lease_token`; a process that dies mid-delivery
-- leaves a lease that runs out, and the delivery is sent again (same webhook-id).
CREATE TABLE webhook_deliveries (
    webhook_id       uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    seq              bigint      GENERATED ALWAYS AS IDENTITY,
    show_id          bigint      NOT NULL,
    xid              xid8        NOT NULL,
    event_id         bigint      NOT NULL,
    type             text        NOT NULL,
    body             text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL DEFAULT 0,
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    -- The HTTP status of the last attempt; NULL: no answer (refused, timed out).
    last_status      integer,
    last_error       text,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    lease_token      uuid,
    delivered_at     timestamptz,
    failed_at        timestamptz,
    PRIMARY KEY (webhook_id, seq),
    UNIQUE (webhook_id, xid, event_id)
);

-- Pruning: finished deliveries by age (pending ones are never pruned).
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (created_at)
    WHERE delivered_at IS NOT NULL OR failed_at IS NOT NULL;

-- The heads: the oldest pending delivery of each (endpoint, show).
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, show_id, xid, event_id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
