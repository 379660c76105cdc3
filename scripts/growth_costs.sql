-- The per-change costs of scripts/bench_growth.sh, timed in the database (psql -v
-- lapsed=N -v reps=N): prints two lines of JSON.
--
-- sweeper: :lapsed holds of 1 seat each on random shows (of the fill, the bench's own,
--   or one made here of :lapsed free seats, so that there are always enough), lapsed 10 minutes ago, made in
--   this transaction (so that the server's own sweeper, which cannot see them, leaves
--   them alone), then the sweeper's three statements as sweeper.rs runs them (claim
--   the due holds, lock their seats in id order, free them with one `expire` event per
--   hold), timed with clock_timestamp(); rolled back. Reported per expired hold.
-- feed: the feed's read (feed/sql.rs `read`) of the last 500 events of the whole feed,
--   and of the last (at most) 500 of the show with the newest event, each :reps
--   times; the median, per event read; and `head`.
-- Two lines: the sweeper's figures, then the feed's.
\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE cost_results (name text PRIMARY KEY, value float8) ON COMMIT DROP;

-- One show of :lapsed free seats, made here and rolled back with the rest, is always
-- among the candidates: the bench may have taken every free seat of the others (at 1
-- show the fill's and the bench's own are full when the hold scenario ran out).
CREATE TEMP TABLE cost_show ON COMMIT DROP AS
WITH s AS (
    INSERT INTO shows (title, starts_at, currency, seats_total, default_ticket_type)
    VALUES ('growth costs', timestamptz '2031-01-01 20:00Z', 'EUR', :lapsed, 'full')
    RETURNING id
) SELECT id FROM s;
INSERT INTO ticket_types (show_id, type, position) SELECT id, 'full', 0 FROM cost_show;
INSERT INTO ticket_prices (show_id, type, category, price)
SELECT id, 'full', 'standard', 1200 FROM cost_show;
INSERT INTO seats (show_id, label, row_label, row_index, number, category)
SELECT c.id, 'A' || g, 'A', 0, g, 'standard' FROM cost_show c, generate_series(1, :lapsed) g;

CREATE TEMP TABLE cost_lapsed ON COMMIT DROP AS
SELECT s.show_id, s.id AS seat_id, s.label, gen_random_uuid() AS hold_id
  FROM seats s
 WHERE s.show_id IN (SELECT id FROM cost_show
                     UNION ALL
                     (SELECT id FROM shows WHERE id NOT IN (SELECT id FROM cost_show)
                       ORDER BY random() LIMIT greatest(1, :lapsed / 10)))
   AND s.area IS NULL AND s.hold_id IS NULL AND s.booking_id IS NULL AND s.block_id IS NULL
 ORDER BY random() LIMIT :lapsed;
INSERT INTO holds (show_id, id, user_id, status, created_at, expires_at, total)
SELECT show_id, hold_id, 'growth-lapsed', 'active', now() - interval '20 minutes',
       now() - interval '10 minutes', 1200
  FROM cost_lapsed;
INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
SELECT show_id, hold_id, seat_id, 'full', 1200 FROM cost_lapsed;
UPDATE seats s SET hold_id = l.hold_id
  FROM cost_lapsed l WHERE s.show_id = l.show_id AND s.id = l.seat_id;

DO $$
DECLARE
    t0 timestamptz; t1 timestamptz; t2 timestamptz; t3 timestamptz;
    shows bigint[]; keys uuid[]; freed bigint; events bigint;
BEGIN
    t0 := clock_timestamp();
    WITH claimed AS (
        UPDATE holds t SET status = 'expired'
          FROM (SELECT h.show_id, h.id FROM holds h
                 WHERE (h.status = 'active' AND h.expires_at <= now())
                 ORDER BY h.expires_at
                 LIMIT 500
                   FOR NO KEY UPDATE SKIP LOCKED) due
         WHERE t.show_id = due.show_id AND t.id = due.id
        RETURNING t.show_id, t.id)
    SELECT array_agg(show_id), array_agg(id) INTO shows, keys FROM claimed;
    t1 := clock_timestamp();
    PERFORM id FROM seats
      WHERE (show_id, hold_id) IN (SELECT * FROM unnest(shows, keys))
      ORDER BY id FOR UPDATE;
    t2 := clock_timestamp();
    WITH freed AS (
        UPDATE seats s SET hold_id = NULL
          FROM unnest(shows, keys) AS x(show_id, hold_id)
         WHERE s.show_id = x.show_id AND s.hold_id = x.hold_id
        RETURNING s.show_id, x.hold_id, s.id, s.label, s.xmin, s.area
    ), ev AS (
        INSERT INTO seat_events (show_id, cause, seats, hold_id, booking_id, ended)
        SELECT show_id, 'expire',
               coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                   'label', label, 'state', 'available', 'version', xmin::text, 'area', area))
                   ORDER BY id), '[]'),
               (array_agg(hold_id))[1], NULL::uuid, NULL::boolean
          FROM freed GROUP BY show_id, hold_id
        RETURNING id)
    SELECT (SELECT count(*) FROM freed), (SELECT count(*) FROM ev) INTO freed, events;
    t3 := clock_timestamp();
    INSERT INTO cost_results VALUES
        ('sweeper_holds', coalesce(cardinality(keys), 0)),
        ('sweeper_seats_freed', freed),
        ('sweeper_events', events),
        ('sweeper_claim_ms', extract(epoch FROM t1 - t0) * 1000),
        ('sweeper_lock_ms', extract(epoch FROM t2 - t1) * 1000),
        ('sweeper_free_ms', extract(epoch FROM t3 - t2) * 1000),
        ('sweeper_us_per_hold',
         extract(epoch FROM t3 - t0) * 1e6 / greatest(1, coalesce(cardinality(keys), 0)));
END $$;
SELECT json_object_agg(name, round(value::numeric, 3)) FROM cost_results;
ROLLBACK;

BEGIN;
CREATE TEMP TABLE cost_results (name text PRIMARY KEY, value float8) ON COMMIT DROP;
-- psql does not substitute variables inside the DO blocks' dollar quotes.
SELECT set_config('growth.reps', :'reps', true) \g /dev/null
DO $$
DECLARE
    t0 timestamptz; n bigint; times float8[];
    after_xid xid8; after_id bigint; one_show bigint; show_xid xid8; show_id_ bigint;
    head_xid xid8; head_id bigint;
BEGIN
    SELECT xid, id INTO after_xid, after_id FROM seat_events
     WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY xid DESC, id DESC OFFSET 500 LIMIT 1;
    SELECT show_id INTO one_show FROM seat_events ORDER BY xid DESC, id DESC LIMIT 1;
    SELECT xid, id INTO show_xid, show_id_ FROM seat_events WHERE show_id = one_show
     ORDER BY xid DESC, id DESC OFFSET 500 LIMIT 1;
    -- Fewer than 501 events: read from the start.
    after_xid := coalesce(after_xid, '0'::xid8); after_id := coalesce(after_id, 0);
    show_xid := coalesce(show_xid, '0'::xid8); show_id_ := coalesce(show_id_, 0);

    times := '{}';
    FOR i IN 1..current_setting('growth.reps')::int LOOP
        t0 := clock_timestamp();
        SELECT count(*) INTO n FROM (
            SELECT xid::text AS xid_text, id, show_id, cause, seats FROM seat_events
             WHERE (xid, id) > (after_xid, after_id)
               AND (xid, id) <= ('9223372036854775807'::xid8, 9223372036854775807)
               AND xid < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY xid, id LIMIT 500) r;
        times := times || extract(epoch FROM clock_timestamp() - t0) * 1e6;
    END LOOP;
    INSERT INTO cost_results VALUES ('feed_all_events', n),
        ('feed_all_us_per_event', (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t) FROM unnest(times) t) / greatest(n, 1));

    times := '{}';
    FOR i IN 1..current_setting('growth.reps')::int LOOP
        t0 := clock_timestamp();
        SELECT count(*) INTO n FROM (
            SELECT xid::text AS xid_text, id, show_id, cause, seats FROM seat_events
             WHERE show_id = one_show
               AND (xid, id) > (show_xid, show_id_)
               AND (xid, id) <= ('9223372036854775807'::xid8, 9223372036854775807)
               AND xid < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY xid, id LIMIT 500) r;
        times := times || extract(epoch FROM clock_timestamp() - t0) * 1e6;
    END LOOP;
    INSERT INTO cost_results VALUES ('feed_show_events', n),
        ('feed_show_us_per_event', (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t) FROM unnest(times) t) / greatest(n, 1));

    times := '{}';
    FOR i IN 1..current_setting('growth.reps')::int LOOP
        t0 := clock_timestamp();
        SELECT xid, id INTO head_xid, head_id FROM seat_events
         WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY xid DESC, id DESC LIMIT 1;
        times := times || extract(epoch FROM clock_timestamp() - t0) * 1e6;
    END LOOP;
    INSERT INTO cost_results VALUES
        ('feed_head_us', (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t) FROM unnest(times) t)),
        ('seat_events', (SELECT count(*) FROM seat_events));
END $$;
SELECT json_object_agg(name, round(value::numeric, 3)) FROM cost_results;
ROLLBACK;
