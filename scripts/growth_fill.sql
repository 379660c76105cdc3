-- The fill of scripts/bench_growth.sh: adds :add shows to the database, written as the
-- engine writes them, and :events change-feed events. Run with psql -v add=N -v
-- events=N -v seq=N (the title numbers start after :seq). Prints the ids of every
-- show of the fill so far.
--
-- Each show is what POST /shows makes of 10 rows (A..J) of 100 seats of category
-- `standard` at 1200 (ticket type `full`, shows.seats_total 1000), starting an hour
-- after the one before. Its history, as the engine would have left it:
-- - every 10th seat (numbers 10, 20, ..., 100) booked: one booking of one seat each (a
--   confirmed hold with its hold_seats, the booking with its booking_seats at the
--   hold's ticket and price, the seat pointing at the booking): 100 bookings a show, a
--   million at 10,000 shows;
-- - seats 5, 25, 45, 65, 85 of each row held once and expired (status 'expired', no
--   seat pointing at it, as the sweeper leaves a hold): 50 a show;
-- - no seat blocked, no standing area, no limit per buyer.
-- The invariants of scripts/faults/audit.py hold over it (a seat points at a live
-- booking that lists it live, every hold and booking has its seats, totals are the sum
-- of their tickets).
--
-- Events: :events rows of `seat_events`, created over the last 23 hours (inside the
-- feed's 24-hour retention, so the sweeper's prune keeps them during the run), spread
-- over every show of the fill so far, with transaction ids below this transaction's
-- (every one readable below the watermark, in feed order), each a `hold` of one seat.
--
-- The script runs this in chunks (500 shows, 100,000 events): each chunk is one
-- transaction of a few seconds, because a long transaction anywhere on the cluster
-- holds back the feed of every database whose watermark is cluster-wide (other
-- checkouts' tests on a shared cluster; DESIGN.md, "The feed's watermark").
\set ON_ERROR_STOP on
BEGIN;
SET LOCAL synchronous_commit = off;

CREATE TEMP TABLE fill_shows ON COMMIT DROP AS
WITH s AS (
    INSERT INTO shows (title, starts_at, currency, seats_total, default_ticket_type)
    SELECT 'growth ' || (:seq + g), timestamptz '2030-01-01 20:00Z' + (:seq + g) * interval '1 hour',
           'EUR', 1000, 'full'
      FROM generate_series(1, :add) g
    RETURNING id
) SELECT id FROM s;

INSERT INTO ticket_types (show_id, type, position) SELECT id, 'full', 0 FROM fill_shows;
INSERT INTO ticket_prices (show_id, type, category, price)
SELECT id, 'full', 'standard', 1200 FROM fill_shows;

-- Who holds or booked which seat (row r, number n), and when.
CREATE TEMP TABLE fill_taken ON COMMIT DROP AS
SELECT f.id AS show_id, r, n, gen_random_uuid() AS hold_id,
       CASE WHEN n % 10 = 0 THEN gen_random_uuid() END AS booking_id,
       'fill-' || (random() * 100000)::int AS user_id,
       now() - (random() * 30 + 1) * interval '1 day' AS at
  FROM fill_shows f, generate_series(0, 9) r, generate_series(1, 100) n
 WHERE n % 10 = 0 OR n % 20 = 5;

INSERT INTO holds (show_id, id, user_id, status, created_at, expires_at, total)
SELECT show_id, hold_id, user_id, CASE WHEN booking_id IS NULL THEN 'expired' ELSE 'confirmed' END,
       at, at + interval '10 minutes', 1200
  FROM fill_taken;
INSERT INTO bookings (show_id, id, hold_id, user_id, status, confirmed_at, total)
SELECT show_id, booking_id, hold_id, user_id, 'confirmed', at + interval '1 minute', 1200
  FROM fill_taken WHERE booking_id IS NOT NULL;

INSERT INTO seats (show_id, label, row_label, row_index, number, category, booking_id)
SELECT f.id, chr(65 + g.r) || g.n, chr(65 + g.r), g.r, g.n, 'standard', t.booking_id
  FROM fill_shows f
 CROSS JOIN generate_series(0, 9) gr (r)
 CROSS JOIN LATERAL (SELECT gr.r, gn.n FROM generate_series(1, 100) gn (n)) g
  LEFT JOIN fill_taken t ON t.show_id = f.id AND t.r = g.r AND t.n = g.n AND t.booking_id IS NOT NULL
 ORDER BY f.id, g.r, g.n;

INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
SELECT t.show_id, t.hold_id, s.id, 'full', 1200
  FROM fill_taken t JOIN seats s ON s.show_id = t.show_id AND s.label = chr(65 + t.r) || t.n;
INSERT INTO booking_seats (show_id, booking_id, seat_id, live, ticket_type, price)
SELECT t.show_id, t.booking_id, s.id, true, 'full', 1200
  FROM fill_taken t JOIN seats s ON s.show_id = t.show_id AND s.label = chr(65 + t.r) || t.n
 WHERE t.booking_id IS NOT NULL;

-- A day of events: xids spread below this transaction's own, so that they sort before
-- anything written later and every reader may read them now.
INSERT INTO seat_events (show_id, xid, cause, seats, hold_id, created_at)
SELECT f.ids[1 + g % cardinality(f.ids)],
       (greatest(3, (pg_current_xact_id()::text::numeric - 1) * g / (:events + 1)))::bigint::text::xid8,
       'hold',
       jsonb_build_array(jsonb_build_object('label', 'A' || (1 + g % 100), 'state', 'held',
                                            'version', (g % 100000)::text)),
       gen_random_uuid(),
       now() - interval '23 hours' + g * (interval '23 hours' / (:events + 1))
  FROM generate_series(1, :events) g,
       (SELECT array_agg(id ORDER BY id) AS ids FROM shows
         WHERE title LIKE 'growth %' AND title NOT LIKE 'growth own%') f;

COMMIT;
SELECT id FROM shows WHERE title LIKE 'growth %' AND title NOT LIKE 'growth own%' ORDER BY id;
