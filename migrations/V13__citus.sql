-- Issue 20: on a database with the `citus` extension, every show's rows live on one
-- node. On plain PostgreSQL it only defines the two functions below.
--
-- Distributed by show id and co-located with `shows` (so that the rows of one show are
-- in one shard group, on one node, and every statement naming `show_id = $n` runs there
-- whole): every table a show's transaction writes. `venues` is a reference table (a
-- copy on every node: shows refer to it). What stays on the coordinator as a plain
-- table: the webhook endpoints and their deliveries, and the feed's horizon (written by
-- background tasks, never inside a show's transaction), and refinery's own history.
-- `idempotency_keys` is distributed by a later migration, once it carries `show_id`.
--
-- The order is forced by Citus (tried, see DESIGN.md "Scaling past one machine"):
-- making `venues` a reference table while `shows` refers to it would turn every table
-- joined to it by foreign keys into a Citus local table, which cannot be distributed
-- afterwards; so the key is dropped, `shows` distributed, `venues` replicated, and the
-- key added back. Then the tables of a show, parents before children.
--
-- Two functions every statement of a show uses for the clock and the transaction id,
-- so that both are always the show's node's own (as its rows' `xmin` and snapshots
-- are): `booking_now(show_id)` for `now()` and `booking_xid(show_id)` for
-- `pg_current_xact_id()`. On plain PostgreSQL they are SQL functions the planner
-- inlines: the statements plan and run exactly as with the built-ins. On Citus, a
-- statement that writes a distributed table has its non-IMMUTABLE functions evaluated
-- by the node that planned it (the coordinator), while its rows are written on the
-- show's node; so there they are IMMUTABLE PL/pgSQL functions of a column, which Citus
-- ships with the statement and the show's node evaluates (tried on Citus 13.0.3: the
-- built-in gave the coordinator's xid, the wrapper the worker's). The lie is safe only
-- because the argument is always a column, never a constant or parameter, so the
-- planner can never fold a call into a plan (booking-core's tests check every call).
CREATE FUNCTION booking_now(show bigint) RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE AS 'SELECT now()';
CREATE FUNCTION booking_xid(show bigint) RETURNS xid8
    LANGUAGE sql STABLE PARALLEL SAFE AS 'SELECT pg_current_xact_id()';

DO $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- With a foreign key to a reference table, Citus must do all of it over one
    -- connection per node (it says so, and refuses otherwise).
    SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    CREATE OR REPLACE FUNCTION booking_now(show bigint) RETURNS timestamptz
        LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN now(); END';
    CREATE OR REPLACE FUNCTION booking_xid(show bigint) RETURNS xid8
        LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN pg_current_xact_id(); END';
    PERFORM create_distributed_function('booking_now(bigint)');
    PERFORM create_distributed_function('booking_xid(bigint)');
    ALTER TABLE shows DROP CONSTRAINT shows_venue_id_fkey;
    PERFORM create_distributed_table('shows', 'id');
    PERFORM create_reference_table('venues');
    ALTER TABLE shows
        ADD CONSTRAINT shows_venue_id_fkey FOREIGN KEY (venue_id) REFERENCES venues (id);
    FOREACH t IN ARRAY ARRAY['ticket_types', 'ticket_prices', 'areas', 'blocks', 'holds',
                             'bookings', 'seats', 'hold_seats', 'booking_seats',
                             'seat_events', 'queues', 'queue_entries']
    LOOP
        PERFORM create_distributed_table(t, 'show_id', colocate_with => 'shows');
    END LOOP;
    -- The feed's order is that of the show's node's transactions (its watermark is
    -- that node's): an event's `xid` is set on the node that writes it. (The column's
    -- default, `pg_current_xact_id()`, would be the coordinator's.)
    CREATE FUNCTION booking_event_xid() RETURNS trigger
        LANGUAGE plpgsql AS 'BEGIN NEW.xid := pg_current_xact_id(); RETURN NEW; END';
    SET LOCAL citus.enable_unsafe_triggers TO on;
    CREATE TRIGGER seat_events_xid BEFORE INSERT ON seat_events
        FOR EACH ROW EXECUTE FUNCTION booking_event_xid();
END
$$;
