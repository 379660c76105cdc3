-- pgbench twin of the server's hold batches (issue 18): the statement of
-- booking-core/src/holds/batch.rs, 32 one-seat holds in one statement (autocommit, one
-- transaction), each hold still checked and written alone: read every wanted seat in
-- the statement's snapshot, lock the candidates' seats in id order FOR UPDATE SKIP
-- LOCKED, and for each hold whose seat was locked at the version read, insert the
-- hold, its hold_seats row, point the seat at it and insert its seat event. Run with
-- -M prepared: the statement takes pgbench variables as parameters, nothing pasted.
--
-- Variables (pgbench -D, set by scripts/bench.sh from setup.sql's output):
--   show0         the pool's first show: shows of 100,000 seats (500 rows of 200), with
--                 consecutive ids (as for hold_full.sql)
--   shows         the pool's number of shows (a transaction past the pool holds nothing,
--                 and bench.sh's count of holds says so, rather than taking seats of
--                 the shows after it)
--   clients       the number of pgbench clients (-c)
--   n             0 (a per-client counter)
--
-- Transaction j (j = client_id + n * clients) holds the seats 32 j .. 32 j + 31 of the
-- pool's sequence, all of show 32 j / 100,000 (100,000 is a multiple of 32), each
-- seat index k of a show mapped to a random-looking seat by the affine permutation
-- (7919 k + 5432) mod 100,000 (7919 is prime to 100,000) and asked for by its label,
-- as a request names it. The items and wanted seats are made in SQL from j instead of
-- the server's parameter arrays; the rest of the statement is the server's, with no
-- area, no limit per buyer, no version or ticket type asked for.
\set j :client_id + :n * :clients
\set n :n + 1
\set show :show0 + (:j * 32) / 100000
WITH items AS (
    SELECT :show::bigint AS show_id, gen_random_uuid() AS hold_id,
           'pgbench-batch'::text AS user_id, 600 AS ttl, NULL::text AS external_ref,
           NULL::text AS metadata, g::bigint AS item
      FROM generate_series(1, 32) AS g
     WHERE (:j * 32) / 100000 < :shows
), w AS (
    SELECT g::bigint AS item,
           CASE WHEN r < 26 THEN chr(65 + r)
                ELSE chr(65 + (r - 26) / 26) || chr(65 + (r - 26) % 26) END
               || (p % 200 + 1) AS label,
           NULL::text AS version, NULL::text AS type
      FROM generate_series(1, 32) AS g,
           LATERAL (SELECT ((((:j * 32 + g - 1) % 100000) * 7919 + 5432) % 100000)::int AS p) AS pp,
           LATERAL (SELECT p / 200 AS r) AS rr
), snap AS (
    SELECT w.item, sh.currency, sh.max_seats_per_user, s.id, s.label, s.row_index, s.number,
           s.booking_id IS NOT NULL OR s.block_id IS NOT NULL
               OR (h.status = 'active' AND h.expires_at > now()) IS TRUE AS taken,
           s.hold_id IS NULL AND s.booking_id IS NULL AND s.block_id IS NULL AS clean,
           s.xmin::text || CASE WHEN (h.status = 'active' AND h.expires_at <= now())
                                THEN 'x' ELSE '' END AS version,
           s.xmin::text AS xmin, w.version AS wanted_version,
           coalesce(w.type, sh.default_ticket_type) AS ticket_type,
           tp.price, tp.type IS NOT NULL AS sells,
           (tp.type IS NOT NULL
            OR EXISTS (SELECT 1 FROM ticket_types tt
                        WHERE tt.show_id = sh.id
                          AND tt.type = coalesce(w.type, sh.default_ticket_type))) AS type_known,
           row_number() OVER (PARTITION BY s.show_id, s.id ORDER BY w.item) AS claim,
           sh.cancelled_at AS show_cancelled_at,
           sh.sales_start AS show_sales_start, sh.sales_end AS show_sales_end,
           (sh.cancelled_at IS NULL
            AND now() >= coalesce(sh.sales_start, '-infinity'::timestamptz)
            AND now() < coalesce(sh.sales_end, 'infinity'::timestamptz)) AS show_on_sale
      FROM w
      JOIN items i ON i.item = w.item
      LEFT JOIN shows sh ON sh.id = i.show_id
      LEFT JOIN seats s ON s.show_id = sh.id AND s.label = w.label
      LEFT JOIN holds h ON h.show_id = s.show_id AND h.id = s.hold_id
      LEFT JOIN ticket_prices tp
             ON tp.show_id = s.show_id AND tp.category = s.category
            AND tp.type = coalesce(w.type, sh.default_ticket_type)
), go AS (
    SELECT item, bool_and(coalesce(id IS NOT NULL AND clean AND claim = 1 AND sells
                                   AND show_on_sale AND max_seats_per_user IS NULL
                                   AND (wanted_version IS NULL
                                        OR wanted_version = version), false)) AS ok
      FROM snap GROUP BY item
), locked AS MATERIALIZED (
    SELECT s.id, s.xmin::text AS x FROM seats s
     WHERE (s.show_id, s.id) IN (SELECT i.show_id, snap.id
                                   FROM snap JOIN go USING (item) JOIN items i USING (item)
                                  WHERE go.ok)
     ORDER BY s.id FOR UPDATE SKIP LOCKED
), verdict AS (
    SELECT snap.item, bool_and(go.ok AND coalesce(l.x = snap.xmin, false)) AS ok
      FROM snap JOIN go USING (item) LEFT JOIN locked l ON l.id = snap.id
     GROUP BY snap.item
), ok_items AS (
    SELECT i.item, i.show_id, i.hold_id, i.user_id, i.ttl, i.external_ref,
           i.metadata, (SELECT coalesce(sum(snap.price), 0) FROM snap WHERE snap.item = i.item)::bigint
               AS total
      FROM items i JOIN verdict v USING (item) WHERE v.ok
), wanted AS (
    SELECT snap.item, snap.id, snap.xmin, snap.ticket_type, snap.price
      FROM snap JOIN verdict v USING (item) WHERE v.ok
), h AS (
    INSERT INTO holds (show_id, id, user_id, expires_at, total, external_ref, metadata)
    SELECT show_id, hold_id, user_id, now() + ttl * interval '1 second', total,
           external_ref, metadata::jsonb
      FROM ok_items
    RETURNING show_id AS hold_show, id AS hold_key, created_at, expires_at
), hs AS (
    INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
    SELECT i.show_id, i.hold_id, w.id, w.ticket_type, w.price
      FROM wanted w JOIN ok_items i USING (item)
), taken AS (
    UPDATE seats s SET hold_id = i.hold_id
      FROM wanted w JOIN ok_items i USING (item)
           JOIN seats o ON o.show_id = i.show_id AND o.id = w.id
     WHERE s.show_id = i.show_id AND s.id = w.id AND s.xmin::text = w.xmin
    RETURNING w.item, s.show_id, s.hold_id, s.id, s.label, s.xmin, s.area,
              o.hold_id IS NOT NULL AS was_held
), ev AS (
    INSERT INTO seat_events (show_id, cause, seats, hold_id, booking_id, ended)
    SELECT t.show_id, 'hold',
           coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                         'label', t.label, 'state', 'held', 'version', t.xmin::text,
                         'until', h.expires_at, 'area', t.area,
                         'was', CASE WHEN t.was_held AND t.area IS NOT NULL THEN 'held' END))
                     ORDER BY t.id), '[]'),
           (array_agg((t.hold_id)::uuid))[1], NULL::uuid, NULL::boolean
      FROM taken t JOIN h ON h.hold_show = t.show_id AND h.hold_key = t.hold_id
     GROUP BY t.item, t.show_id
    RETURNING show_id, xid::text AS xid_text, id, seats
)
SELECT snap.item, snap.currency, snap.max_seats_per_user, snap.id, snap.label,
       snap.ticket_type, snap.price, snap.sells, snap.type_known, snap.row_index,
       snap.number, snap.taken, snap.version, snap.show_cancelled_at,
       snap.show_sales_start, snap.show_sales_end, snap.show_on_sale, v.ok,
       h.created_at, h.expires_at,
       (SELECT count(*) FROM taken t WHERE t.item = snap.item) AS taken_count,
       e.xid_text AS ev_xid, e.id AS ev_id, e.seats AS ev_seats
  FROM snap
  JOIN verdict v USING (item)
  JOIN items i USING (item)
  LEFT JOIN h ON h.hold_show = i.show_id AND h.hold_key = i.hold_id
  LEFT JOIN ev e ON e.show_id = i.show_id
                AND e.seats -> 0 ->> 'label' = (SELECT t.label FROM taken t
                                                 WHERE t.item = snap.item
                                                 ORDER BY t.id LIMIT 1)
 ORDER BY snap.item;
