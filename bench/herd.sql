-- pgbench twin of the herd: every client, every transaction, on the same seat.
-- Run with -M prepared (as the server runs its statements): every value is a pgbench
-- variable, sent as a parameter; none is \gset text pasted into quotes.
--
-- Variables: show, first (the seat fought over: the herd show's first seat).
--
-- Lock the seat, check it, take it if free (insert a hold of an hour, its hold_seats
-- row, point the seat), else give up. The first transaction of the run wins; every
-- later one is a loser that queued for the row lock, found the seat taken and ended:
-- the lock queue of N-1 losers, repeatable for any duration. (booking-core refuses a
-- taken seat from a snapshot read before it locks anything, so its losers need not
-- queue at all; this twin is what "lock, check, fail" costs when they do.)
BEGIN;
SELECT s.xmin::text AS seen,
       s.booking_id IS NULL AND s.block_id IS NULL AND s.hold_id IS NULL AS free,
       s.booking_id IS NULL AND s.block_id IS NULL AND s.hold_id IS NOT NULL AS pointed,
       tp.price
  FROM seats s
  JOIN shows sh ON sh.id = s.show_id
  LEFT JOIN ticket_prices tp ON tp.show_id = s.show_id AND tp.category = s.category
                            AND tp.type = sh.default_ticket_type
 WHERE s.show_id = :show AND s.id = :first
   FOR UPDATE OF s \gset
-- A new statement sees the hold of the transaction we waited for.
\if :pointed
SELECT NOT (h.status = 'active' AND h.expires_at > now()) AS free
  FROM seats s JOIN holds h ON h.show_id = s.show_id AND h.id = s.hold_id
 WHERE s.show_id = :show AND s.id = :first \gset
\endif
\if :free
INSERT INTO holds (show_id, id, user_id, expires_at, total)
VALUES (:show, gen_random_uuid(), 'pgbench-herd', now() + interval '3600 seconds', :price)
RETURNING id AS hold_id \gset
INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
VALUES (:show, :hold_id, :first, 'full', :price);
UPDATE seats SET hold_id = :hold_id
 WHERE show_id = :show AND id = :first AND xmin::text = :seen;
\endif
END;
