-- The change feed: every transaction that changes seats writes what it changed here, in
-- the same transaction, and calls pg_notify('booking_events', show_id).
--
-- Readers never trust `id > last_seen` alone: ids come from a sequence, handed out
-- before commit, so a transaction that commits late would be skipped. Each event
-- carries the id of its transaction (`xid`), and readers take only events of
-- transactions older than every transaction still running
-- (`xid < pg_snapshot_xmin(pg_current_snapshot())`): those can no longer change. The
-- feed's order is (xid, id).
CREATE TABLE seat_events (
    show_id     bigint      NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    cause       text        NOT NULL CHECK (cause IN ('hold', 'confirm', 'release', 'expire', 'cancel')),
    -- [{"label": "A1", "state": "held", "version": "7402"}, ...]
    seats       jsonb       NOT NULL CHECK (jsonb_typeof(seats) = 'array' AND jsonb_array_length(seats) > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (show_id, id)
);

CREATE INDEX seat_events_feed ON seat_events (xid, id);
CREATE INDEX seat_events_show_feed ON seat_events (show_id, xid, id);
CREATE INDEX seat_events_age ON seat_events (created_at);
