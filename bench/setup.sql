-- Shows for the pgbench reference scripts, created directly in the server's database
-- (after the server has migrated it). Run by scripts/bench.sh:
--
--   psql -v pool1=200000 -v pool4=400000 -v full_shows=3 -v batch_shows=15 -f bench/setup.sql
--
-- Creates these shows and prints one `name=value` line per pgbench variable:
--   hold1: a pool of :pool1 free seats (rows of 200) for hold1.sql, ids contiguous;
--   hold4: a pool of :pool4 free seats for hold4.sql;
--   full: :full_shows shows of 100,000 seats (500 rows of 200) for hold_full.sql,
--         consecutive show ids, seat ids contiguous across them;
--   batch: :batch_shows shows of 100,000 seats alike for hold_batch.sql;
--   seatmap: 20 rows x 50 seats = 1,000 seats, 100 of them held (an active hold each),
--            the same shape as the HTTP seatmap scenario's show;
--   herd: one row of 10 seats; herd.sql fights over its first seat.
-- scripts/bench.sh sizes the pools from the run's duration and a generous bound on
-- the rate (issue 18, point 5), and checks afterwards that no transaction missed.
\set ON_ERROR_STOP on
\pset tuples_only on
\pset format unaligned

CREATE TEMP TABLE bench_shows (name text, idx int, show_id bigint, seats int, per_row int,
                                PRIMARY KEY (name, idx));

-- One INSERT in pool order, so that the shows of a pool have consecutive ids.
WITH wanted (name, idx, seats, per_row) AS (
    VALUES ('hold1', 0, :pool1, 200), ('hold4', 0, :pool4, 200),
           ('seatmap', 0, 1000, 50), ('herd', 0, 10, 10)
    UNION ALL SELECT 'full', g, 100000, 200 FROM generate_series(0, :full_shows - 1) g
    UNION ALL SELECT 'batch', g, 100000, 200 FROM generate_series(0, :batch_shows - 1) g
), numbered AS (
    SELECT *, row_number() OVER (ORDER BY name, idx) AS n FROM wanted
), s AS (
    INSERT INTO shows (title, starts_at, seats_total)
    SELECT 'pgbench ' || name || ' ' || idx, '2030-01-01T20:00:00Z', seats
      FROM numbered ORDER BY n
    RETURNING id, title
)
INSERT INTO bench_shows
SELECT n.name, n.idx, s.id, n.seats, n.per_row
  FROM s JOIN numbered n ON s.title = 'pgbench ' || n.name || ' ' || n.idx;

-- One show at a time, in order, so that each show's seat ids are contiguous. Row label
-- of row index r: A..Z, AA..ZZ, AAA..ZZZ (as the schema allows).
DO $$
DECLARE b record;
BEGIN
    FOR b IN SELECT * FROM bench_shows ORDER BY show_id LOOP
        INSERT INTO seats (show_id, label, row_label, row_index, number, category)
        SELECT b.show_id, rl || (i % b.per_row + 1), rl, i / b.per_row, i % b.per_row + 1, 'standard'
          FROM generate_series(0, b.seats - 1) AS i,
               LATERAL (SELECT i / b.per_row AS r) AS rr,
               LATERAL (SELECT CASE
                   WHEN r < 26 THEN chr(65 + r)
                   WHEN r < 702 THEN chr(65 + (r - 26) / 26) || chr(65 + (r - 26) % 26)
                   ELSE chr(65 + (r - 702) / 676) || chr(65 + ((r - 702) / 26) % 26) || chr(65 + (r - 702) % 26)
               END AS rl) AS l
         ORDER BY i;
    END LOOP;
END $$;

-- Every show sells one ticket type, `full`, at 1200 a standard seat (as the HTTP
-- scenarios' shows, made with the `prices` shorthand).
INSERT INTO ticket_types (show_id, type, position) SELECT show_id, 'full', 0 FROM bench_shows;
INSERT INTO ticket_prices (show_id, type, category, price)
SELECT show_id, 'full', 'standard', 1200 FROM bench_shows;

-- The seat map show: every tenth seat held by an active hold of its own.
CREATE TEMP TABLE picked AS
SELECT s.show_id, s.id AS seat_id, gen_random_uuid() AS hold_id
  FROM seats s JOIN bench_shows b ON b.show_id = s.show_id AND b.name = 'seatmap'
 WHERE s.id % 10 = 0;
INSERT INTO holds (show_id, id, user_id, expires_at, total)
SELECT show_id, hold_id, 'pgbench-setup', now() + interval '1 day', 1200 FROM picked;
INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
SELECT show_id, hold_id, seat_id, 'full', 1200 FROM picked;
UPDATE seats s SET hold_id = p.hold_id
  FROM picked p
 WHERE s.show_id = p.show_id AND s.id = p.seat_id;

ANALYZE seats;
ANALYZE holds;
ANALYZE hold_seats;

-- Every show's seat ids must be contiguous (the scripts address seats as first + offset),
-- and so must a pool's: its shows' ids consecutive, its seat ids one run. Asked pool by
-- pool, each a statement of its own (Citus, scripts/bench_citus.sh, refuses the
-- aggregate over a LATERAL join to the temporary table, and a subquery correlated
-- with it), and the variables kept in bench_vars.
CREATE TEMP TABLE bench_vars (name text, value bigint);
DO $$
DECLARE b record; x record; first bigint;
BEGIN
    FOR b IN SELECT name, min(show_id) AS lo, max(show_id) AS hi, count(*) AS n,
                    sum(seats) AS seats
               FROM bench_shows GROUP BY name LOOP
        SELECT min(id) AS lo, max(id) AS hi, count(*) AS n INTO x
          FROM seats WHERE show_id BETWEEN b.lo AND b.hi;
        IF b.hi - b.lo + 1 <> b.n OR x.hi - x.lo + 1 <> x.n OR x.n <> b.seats THEN
            RAISE EXCEPTION 'seat ids not contiguous for %', b.name;
        END IF;
        SELECT min(id) INTO first FROM seats WHERE show_id = b.lo;
        INSERT INTO bench_vars VALUES (b.name || '_show', b.lo), (b.name || '_first', first),
                                      (b.name || '_seats', b.seats), (b.name || '_shows', b.n);
    END LOOP;
END $$;

SELECT name || '=' || value FROM bench_vars;
