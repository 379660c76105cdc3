-- Holds and bookings that change: seats added to and removed from a hold, bookings
-- cancelled in part and exchanged for other seats.
--
-- A booking's tickets were its hold's; once a booking can give back seats and take
-- others, each booked seat keeps its own ticket type and price, copied from the hold
-- at the confirm (and priced anew for a seat taken by an exchange). `ended_at` says
-- when a seat left the booking (a partial cancel, an exchange or the cancel of the
-- rest), `ended_by` by which (`cancel` or `exchange`: a repeated partial cancel passes
-- over seats cancelled already, not seats exchanged away). A cancelled booking lists the
-- seats it still had when it was cancelled.
ALTER TABLE booking_seats
    ADD COLUMN ticket_type text,
    ADD COLUMN price bigint CHECK (price >= 0),
    ADD COLUMN ended_at timestamptz,
    ADD COLUMN ended_by text CHECK (ended_by IN ('cancel', 'exchange'));
UPDATE booking_seats bs SET ticket_type = hs.ticket_type, price = hs.price
  FROM bookings b
  JOIN hold_seats hs ON hs.show_id = b.show_id AND hs.hold_id = b.hold_id
 WHERE b.show_id = bs.show_id AND b.id = bs.booking_id AND hs.seat_id = bs.seat_id;
UPDATE booking_seats bs SET ended_at = b.cancelled_at, ended_by = 'cancel'
  FROM bookings b
 WHERE b.show_id = bs.show_id AND b.id = bs.booking_id AND NOT bs.live;
ALTER TABLE booking_seats
    ALTER COLUMN ticket_type SET NOT NULL,
    ADD CONSTRAINT booking_seats_ended_check
        CHECK (live = (ended_at IS NULL) AND live = (ended_by IS NULL));
ALTER TABLE seat_events DROP CONSTRAINT seat_events_cause_check,
    ADD CONSTRAINT seat_events_cause_check
        CHECK (cause IN ('hold', 'confirm', 'release', 'expire', 'cancel', 'block', 'unblock',
                         'add', 'remove', 'exchange'));
