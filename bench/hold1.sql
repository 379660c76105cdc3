-- pgbench twin of an uncontended one-seat HTTP hold (POST /shows/{id}/holds, 1 seat).
-- Run with -M prepared (as the server runs its statements): every value is a pgbench
-- variable, sent as a parameter; none is \gset text pasted into quotes.
--
-- Variables (pgbench -D, set by scripts/bench.sh from setup.sql's output):
--   show, first, pool  the pool show, its first seat id, its number of seats
--   clients            the number of pgbench clients (-c)
--   n                  0 (a per-client counter: pgbench keeps variables between a
--                      client's transactions)
--   offset             where this run starts in the pool's sequence (0; a second run
--                      on the same pool starts past the first one's seats)
--
-- Seat k of client c is first + permute(offset + c + k * clients, pool) (with a fixed
-- seed, so that runs share one permutation): every client walks its own pseudo-random
-- sequence of seats and no two transactions ask for the same seat while the pool
-- exceeds the run's transactions (bench.sh sizes the pool and checks afterwards that
-- every transaction took its seat).
--
-- The work is that of booking-core's hold transaction: lock the seat, check that it is
-- free (not booked, not blocked, not pointing at a live hold), read its price as the
-- show's default ticket type, insert the hold and its hold_seats row (type and price),
-- point the seat at the hold guarded by the xmin seen under the lock, commit.
-- Not included: the server's extra work for live updates (its seat_events insert), its
-- snapshot read before locking, the show's currency lookup and lock_timeout setting.
\set seat :first + permute((:offset + :client_id + :n * :clients) % :pool, :pool, 5432)
\set n :n + 1
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
-- The seat points at a hold: is it still live? Asked in a new statement, which sees a
-- hold committed by a transaction we may just have waited for (the locking
-- statement's snapshot predates it).
\if :pointed
SELECT NOT (h.status = 'active' AND h.expires_at > now()) AS free
  FROM seats s JOIN holds h ON h.show_id = s.show_id AND h.id = s.hold_id
 WHERE s.show_id = :show AND s.id = :seat \gset
\endif
\if :free
INSERT INTO holds (show_id, id, user_id, expires_at, total)
VALUES (:show, gen_random_uuid(), 'pgbench-hold1', now() + interval '600 seconds', :price)
RETURNING id AS hold_id \gset
INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
VALUES (:show, :hold_id, :seat, 'full', :price);
UPDATE seats SET hold_id = :hold_id
 WHERE show_id = :show AND id = :seat AND xmin::text = :seen;
\endif
END;
