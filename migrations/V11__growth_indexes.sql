-- Issue 18, cost as data grows: indexes that the EXPLAINs of the hot statements at
-- 10,000 shows (10 million seats, a million bookings, a day of events: the data of
-- scripts/bench_growth.sh) showed missing.

-- The sweeper's minutely `shows::finish_cancellations` ("SELECT sh.id FROM shows sh
-- WHERE sh.cancelled_at IS NOT NULL AND (EXISTS active hold OR EXISTS confirmed
-- booking) ORDER BY sh.id LIMIT 16") walked every show by its primary key to find the
-- cancelled ones: 10,000 rows removed by the filter, 2.2 ms, growing with the season.
-- Cancelled shows are few: this index holds only them, in the statement's order.
CREATE INDEX shows_cancelled ON shows (id) WHERE cancelled_at IS NOT NULL;

-- Not added: hold_seats (show_id, seat_id), named in the notes. No statement of the
-- engine looks a hold's seats up by seat: every read and write of hold_seats (hold,
-- batch hold, add, remove, confirm, late confirm, tickets, release, the limit per
-- buyer, the report) goes by (show_id, hold_id), a prefix of its primary key, and the
-- report's join by (show_id, hold_id, seat_id) is the whole key. The one user would be
-- the foreign key's ON DELETE CASCADE from seats, and the engine never deletes seats
-- (shows are cancelled, not deleted). An index there would cost one more index write
-- per held seat on the hot path for no read.
