-- pgbench twin of the server's complete one-seat hold, per request (issue 18): the
-- work of booking-core's hold transaction (holds/take.rs) with the event insert that
-- hold1.sql leaves out. Run with -M prepared, as the server runs its statements: every
-- value is a pgbench variable (sent as a parameter), none is text pasted into quotes.
--
-- Variables (pgbench -D, set by scripts/bench.sh from setup.sql's output):
--   show0, first  the pool's first show and its first seat id: the pool is shows of
--                 100,000 seats (500 rows of 200) with consecutive show ids and seat
--                 ids contiguous across them
--   clients       the number of pgbench clients (-c)
--   n             0 (a per-client counter: pgbench keeps variables between a client's
--                 transactions)
--
-- Transaction j (j = client_id + n * clients, so that no two ask for the same seat)
-- takes a random seat of show j / 100,000 of the pool: permute(j mod 100,000) of it,
-- as the HTTP holds scenario takes random seats of its 100,000-seat shows, one show
-- after the other. bench.sh sizes the pool from the duration and a generous bound on
-- the rate, and checks afterwards that every transaction took its seat.
--
-- The work, as the server's: lock the seat (FOR UPDATE), check that it is free (not
-- booked, not blocked, not pointing at a live hold: a second statement when it points
-- at one), read its price as the show's default ticket type; then one statement of
-- the CTEs of `write_ctes` (take.rs): insert the hold, its hold_seats row, point the
-- seat at it guarded by the xmin seen under the lock, insert the seat event (the
-- feed's `ev` CTE: one jsonb array of the seats, label, state, version, until); commit.
-- Not included: the server's snapshot read before locking, its lock_timeout setting
-- and its check that the show still sells (a row of `shows`, read again).
\set j :client_id + :n * :clients
\set n :n + 1
\set show :show0 + :j / 100000
\set seat :first + (:j / 100000) * 100000 + permute(:j % 100000, 100000, 5432)
BEGIN;
SELECT s.xmin::text AS seen,
       s.booking_id IS NULL AND s.block_id IS NULL AND s.hold_id IS NULL AS free,
       s.booking_id IS NULL AND s.block_id IS NULL AND s.hold_id IS NOT NULL AS pointed,
       tp.price
  FROM seats s
  JOIN shows sh ON sh.id = s.show_id
  LEFT JOIN ticket_prices tp ON tp.show_id = s.show_id AND tp.category = s.category
                            AND tp.type = sh.default_ticket_type
 WHERE s.show_id = :show AND s.id = :seat
   FOR UPDATE OF s \gset
-- The seat points at a hold: is it still live? (A new statement sees a hold committed
-- by a transaction we may have waited for.)
\if :pointed
SELECT NOT (h.status = 'active' AND h.expires_at > now()) AS free
  FROM seats s JOIN holds h ON h.show_id = s.show_id AND h.id = s.hold_id
 WHERE s.show_id = :show AND s.id = :seat \gset
\endif
\if :free
WITH h AS (
    INSERT INTO holds (show_id, id, user_id, expires_at, total)
    VALUES (:show, gen_random_uuid(), 'pgbench-full', now() + 600 * interval '1 second',
            :price)
    RETURNING show_id AS hold_show, id AS hold_key, created_at, expires_at
), hs AS (
    INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
    SELECT hold_show, hold_key, :seat, 'full', :price FROM h
), taken AS (
    UPDATE seats s SET hold_id = h.hold_key
      FROM h JOIN seats o ON o.show_id = h.hold_show AND o.id = :seat
     WHERE s.show_id = h.hold_show AND s.id = :seat AND s.xmin::text = :seen
    RETURNING s.show_id, s.hold_id, s.id, s.label, s.xmin, s.area,
              o.hold_id IS NOT NULL AS was_held
), ev AS (
    INSERT INTO seat_events (show_id, cause, seats, hold_id, booking_id, ended)
    SELECT t.show_id, 'hold',
           coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                         'label', t.label, 'state', 'held', 'version', t.xmin::text,
                         'until', h.expires_at, 'area', t.area,
                         'was', CASE WHEN t.was_held AND t.area IS NOT NULL THEN 'held' END))
                     ORDER BY t.id), '[]'),
           (array_agg(t.hold_id::uuid))[1], NULL::uuid, NULL::boolean
      FROM taken t JOIN h ON h.hold_show = t.show_id AND h.hold_key = t.hold_id
     GROUP BY t.show_id
    RETURNING show_id, xid::text AS xid_text, id, seats
)
SELECT h.created_at, h.expires_at, (SELECT count(*) FROM taken) AS taken,
       (SELECT xid_text FROM ev) AS ev_xid, (SELECT id FROM ev) AS ev_id
  FROM h;
\endif
END;
