-- Issue 20: an exact feed per node. Each event says which node's transaction wrote it
-- (`node`: the Citus group id; 0 on plain PostgreSQL) and in which of its show's stays
-- on a node (`epoch`: 0 until the show's shard group first moves; +1 at each move).
--
-- Why both (DESIGN.md, "The feed per node"): transaction ids are a node's own, so the
-- whole feed is one `(xid, id)` order per node, cut at that node's watermark, and a
-- reader keeps a cursor per node. A shard move copies a show's events to another node
-- with their old `xid`s, unrelated to the new node's: `node` keeps them in the order
-- and under the watermark of the node that wrote them. One show's events are in
-- `(epoch, xid, id)` order: every event written before a move committed before it (the
-- move waits for the shard's writers), so all of them precede the events written
-- after it, on whichever node.
--
-- On plain PostgreSQL both are 0 for every event (a constant default: no rewrite), and
-- nothing reads them: the statements and plans stay as they were.
-- In a DO block: Citus sends a distributed table's DDL to the workers as the text of
-- the statement it came in, and refinery sends the whole file as one (refused there:
-- "cannot insert multiple commands into a prepared statement"). On Citus, DDL of
-- distributed tables and functions in one transaction must also use one connection per
-- node; SET LOCAL lasts to the end of the transaction.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    END IF;
    ALTER TABLE seat_events
        ADD COLUMN node integer NOT NULL DEFAULT 0,
        ADD COLUMN epoch integer NOT NULL DEFAULT 0;
END
$$;

-- The node a statement of the show runs on, and the show's stay there (the epoch an
-- event written now gets): both 0 on plain PostgreSQL, inlined.
CREATE FUNCTION booking_node(show bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 0';
CREATE FUNCTION booking_epoch(show bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 0';

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- As `booking_now` (V13): IMMUTABLE, always called on a column, so that Citus ships
    -- it and the show's node answers with its own group.
    CREATE OR REPLACE FUNCTION booking_node(show bigint) RETURNS integer
        LANGUAGE plpgsql IMMUTABLE AS
        'BEGIN RETURN (SELECT groupid FROM pg_dist_local_group); END';
    PERFORM create_distributed_function('booking_node(bigint)');
    -- The epoch is that of the show's newest event, +1 when another node wrote it:
    -- the first event after a move starts the next stay. It reads the show's shard
    -- itself: the distributed table, on the worker, would be a distributed query
    -- inside a shard's statement, which Citus refuses. Two first events after a move,
    -- concurrent, both see the old newest one and both take the same new epoch: they
    -- are on one node, in its xid order.
    CREATE OR REPLACE FUNCTION booking_epoch(show bigint) RETURNS integer
        LANGUAGE plpgsql IMMUTABLE AS $f$
        DECLARE
            here integer;
            last_node integer;
            last_epoch integer;
        BEGIN
            SELECT groupid INTO here FROM pg_dist_local_group;
            EXECUTE format('SELECT node, epoch FROM %s WHERE show_id = $1
                             ORDER BY epoch DESC, xid DESC, id DESC LIMIT 1',
                           shard_name('seat_events'::regclass,
                                      get_shard_id_for_distribution_column('seat_events', show)))
               INTO last_node, last_epoch USING show;
            RETURN CASE WHEN last_node IS NULL THEN 0
                        WHEN last_node = here THEN last_epoch
                        ELSE last_epoch + 1 END;
        END
        $f$;
    PERFORM create_distributed_function('booking_epoch(bigint)');
    -- Set on the node with the xid (V13's trigger, now also node and epoch).
    CREATE OR REPLACE FUNCTION booking_event_xid() RETURNS trigger
        LANGUAGE plpgsql AS $f$
        BEGIN
            NEW.xid := pg_current_xact_id();
            NEW.node := booking_node(NEW.show_id);
            NEW.epoch := booking_epoch(NEW.show_id);
            RETURN NEW;
        END
        $f$;
    -- A show's feed in its order, and the newest event of a show (the trigger's read).
    CREATE INDEX seat_events_show_epoch ON seat_events (show_id, epoch, xid, id);
    -- The whole feed per node.
    CREATE INDEX seat_events_node_feed ON seat_events (node, xid, id);
END
$$;

-- The retention horizon per node: the newest position of each node's events pruned so
-- far (a resume is checked against the horizon of the node that wrote its event).
-- Plain PostgreSQL has the one row of node 0.
ALTER TABLE feed_horizon DROP COLUMN one;
ALTER TABLE feed_horizon ADD COLUMN node integer NOT NULL DEFAULT 0 PRIMARY KEY;
