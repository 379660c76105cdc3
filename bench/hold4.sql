-- pgbench twin of an uncontended four-seat HTTP hold (4 adjacent seats of one row).
-- Run with -M prepared (as the server runs its statements): every value is a pgbench
-- variable, sent as a parameter; none is \gset text pasted into quotes.
--
-- Variables as for hold1.sql (show, first, pool, clients, n); pool is a multiple of 4
-- and of the row length. Group k of client c is the 4 seats from
-- first + 4 * permute(c + k * clients, pool / 4): no two transactions ask for the same
-- seats while pool / 4 exceeds the transactions.
--
-- The work: lock the 4 seats in id order, check that all are free (not booked, blocked
-- or held) and read their prices as the default ticket type, insert the hold and its 4
-- hold_seats rows (type and price), point the 4 seats at it guarded by the xmins seen under the
-- lock, commit. Not included (as in hold1.sql): the seat_events insert, the snapshot
-- read, the currency lookup.
\set base :first + 4 * permute((:client_id + :n * :clients) % (:pool / 4), :pool / 4, 5432)
\set n :n + 1
BEGIN;
SELECT count(*) FILTER (WHERE booking_id IS NULL AND block_id IS NULL AND hold_id IS NULL) AS nfree,
       count(*) FILTER (WHERE booking_id IS NULL AND block_id IS NULL AND hold_id IS NOT NULL)
           AS npointed,
       string_agg(seen, ',' ORDER BY id) AS seen,
       string_agg(coalesce(price::text, ''), ',' ORDER BY id) AS prices,
       coalesce(sum(price), 0) AS total
  FROM (SELECT s.id, s.booking_id, s.block_id, s.hold_id, s.xmin::text AS seen, tp.price
          FROM seats s
          JOIN shows sh ON sh.id = s.show_id
          LEFT JOIN ticket_prices tp ON tp.show_id = s.show_id AND tp.category = s.category
                                    AND tp.type = sh.default_ticket_type
         WHERE s.show_id = :show AND s.id BETWEEN :base AND :base + 3
         ORDER BY s.id
           FOR UPDATE OF s) AS locked \gset
-- Seats pointing at a hold are free when that hold is no longer live (a new statement,
-- which sees holds committed by transactions we may have waited for).
\if :npointed > 0
SELECT :nfree + count(*) FILTER (WHERE NOT (h.status = 'active' AND h.expires_at > now())) AS nfree
  FROM seats s JOIN holds h ON h.show_id = s.show_id AND h.id = s.hold_id
 WHERE s.show_id = :show AND s.id BETWEEN :base AND :base + 3 AND s.booking_id IS NULL \gset
\endif
\if :nfree = 4
INSERT INTO holds (show_id, id, user_id, expires_at, total)
VALUES (:show, gen_random_uuid(), 'pgbench-hold4', now() + interval '600 seconds', :total)
RETURNING id AS hold_id \gset
INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
SELECT :show, :hold_id, id, 'full', nullif(price, '')::bigint
  FROM unnest(ARRAY[:base, :base + 1, :base + 2, :base + 3]::bigint[],
              string_to_array(:prices, ',')) AS p(id, price);
UPDATE seats s SET hold_id = :hold_id
  FROM unnest(ARRAY[:base, :base + 1, :base + 2, :base + 3]::bigint[],
              string_to_array(:seen, ',')) AS seen(id, xmin)
 WHERE s.show_id = :show AND s.id = seen.id AND s.xmin::text = seen.xmin;
\endif
END;
