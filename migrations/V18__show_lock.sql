-- Issue 20: `booking_lock_timeout(value, show)`, called at the start of a transaction of
-- one show (`database::SET_SHOW_LOCK_TIMEOUT`): V15's lock bound, and on Citus the
-- show's shard group held in place for the rest of the transaction.
--
-- Citus takes a shard's metadata lock in share mode for each writing statement, and a
-- shard move that blocks writes takes it exclusively; a `SELECT ... FOR UPDATE` takes
-- none. So a transaction that locked its rows on a shard and then wrote could have the
-- move happen in between: its write went to the new placement, where every moved row
-- has a new version (tried on Citus 13.0.3 with `citus_move_shard_placement(...,
-- 'block_writes')` under holds: the hold's write found none of the seats it had
-- locked). Taking the share lock first makes the move wait for the transaction (and
-- the transaction wait, bounded by its lock timeout, for a move already running).
-- `lock_shard_metadata` is Citus's own function for it (mode 5: ShareLock); it takes
-- the lock on the coordinator, where a move takes its own.
CREATE FUNCTION booking_lock_timeout(value text, show bigint) RETURNS text
    LANGUAGE sql VOLATILE AS $$SELECT set_config('lock_timeout', value, true)$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    CREATE OR REPLACE FUNCTION booking_lock_timeout(value text, show bigint) RETURNS text
        LANGUAGE plpgsql VOLATILE AS $f$
        BEGIN
            EXECUTE format('SET LOCAL lock_timeout = %L', value);
            PERFORM lock_shard_metadata(5, ARRAY[
                get_shard_id_for_distribution_column('shows', show)]);
            RETURN value;
        END
        $f$;
END
$$;
