-- Issue 20: an event's id, given by a function of its show, so that on Citus the
-- statement that writes a change and its event runs on the show's node alone.
--
-- `seat_events.id` is an identity column: left to its default, Citus refuses to push an
-- `INSERT ... SELECT` into `seat_events` down to the show's shard ("Sequences cannot be
-- used in router queries", "volatile functions are not allowed in distributed
-- INSERT ... SELECT queries"; Citus 13.0.3) and runs it via the coordinator, which then
-- copies every CTE result the insert reads to every worker: each change of one show
-- became a two-phase commit over all workers, and stopped while any was down. The
-- statements (`feed::EventsSql`) now give the id (`OVERRIDING SYSTEM VALUE`) and the
-- xid (`booking_xid`, V13) themselves.
--
-- `booking_event_id(show)`: the next value of the identity's own sequence. On plain
-- PostgreSQL a SQL function (the same `nextval` the default is). On Citus an IMMUTABLE
-- PL/pgSQL function of a column, shipped with the statement and evaluated on the
-- show's node, the same lie as `booking_now` and `booking_xid` (see V13; the test
-- `node_functions` checks that every call's argument is a column). Each worker has its
-- own copy of the sequence, made by Citus, starting at its group id << 48: ids of
-- different nodes never meet, also after a show moves (its primary key is
-- `(show_id, id)`).
CREATE FUNCTION booking_event_id(show bigint) RETURNS bigint
    LANGUAGE sql VOLATILE AS $$SELECT nextval('seat_events_id_seq')$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    CREATE OR REPLACE FUNCTION booking_event_id(show bigint) RETURNS bigint
        LANGUAGE plpgsql IMMUTABLE AS $f$
        BEGIN
            RETURN nextval('seat_events_id_seq');
        END
        $f$;
    PERFORM create_distributed_function('booking_event_id(bigint)');
END
$$;
