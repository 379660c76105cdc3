-- Issue 17, the integrator's side: references and metadata of holds and bookings, a
-- show's sales window and cancellation, and the feed's retention horizon.

-- An integrator's own order number and free-form data. A hold may carry them (its
-- confirm copies them, or replaces them with the confirm's own); a booking keeps them.
-- The reference names one booking of its show for ever: cancelled bookings keep theirs,
-- so a lookup by reference never finds two. Metadata is checked at 4 KiB of compact
-- JSON by the engine; jsonb prints a space after each ':' and ',', so the backstop here
-- allows twice that.
ALTER TABLE holds
    ADD COLUMN external_ref text CHECK (external_ref ~ '^[!-~]{1,128}$'),
    ADD COLUMN metadata     jsonb CHECK (jsonb_typeof(metadata) = 'object'
                                         AND octet_length(metadata::text) <= 8192);
ALTER TABLE bookings
    ADD COLUMN external_ref text CHECK (external_ref ~ '^[!-~]{1,128}$'),
    ADD COLUMN metadata     jsonb CHECK (jsonb_typeof(metadata) = 'object'
                                         AND octet_length(metadata::text) <= 8192);
-- When a hold was released (by its owner, an admin, or the show's cancellation, which
-- gives it the show's cancelled_at): what a show's cancellation released is then found
-- by that time, as the bookings it cancelled are by their cancelled_at.
ALTER TABLE holds ADD COLUMN released_at timestamptz;
CREATE UNIQUE INDEX bookings_external_ref ON bookings (show_id, external_ref)
    WHERE external_ref IS NOT NULL;

-- The sales window (either end open when NULL) and the show's cancellation: once
-- cancelled_at is set the show refuses every hold for ever.
ALTER TABLE shows
    ADD COLUMN sales_start  timestamptz,
    ADD COLUMN sales_end    timestamptz,
    ADD COLUMN cancelled_at timestamptz,
    ADD CONSTRAINT shows_sales_window_check CHECK (sales_start < sales_end);

-- A show's cancellation is one event (it may change no seat at all: a show nobody held).
ALTER TABLE seat_events DROP CONSTRAINT seat_events_cause_check,
    ADD CONSTRAINT seat_events_cause_check
        CHECK (cause IN ('hold', 'confirm', 'release', 'expire', 'cancel', 'block', 'unblock',
                         'add', 'remove', 'exchange', 'show_cancel'));
ALTER TABLE seat_events DROP CONSTRAINT seat_events_seats_check,
    ADD CONSTRAINT seat_events_seats_check
        CHECK (jsonb_typeof(seats) = 'array'
               AND (jsonb_array_length(seats) > 0 OR cause = 'show_cancel'));

-- The feed's retention horizon: the newest position pruned so far. A follower asking to
-- resume at or before it may have lost events, and is told so (410 position_expired)
-- instead of getting a feed with a hole in it. One row, written with each prune.
CREATE TABLE feed_horizon (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    xid      xid8    NOT NULL,
    id       bigint  NOT NULL
);
