-- Issue 20, after V14 gave `idempotency_keys` its `show_id`: on Citus the keys are
-- distributed with their show (a key is claimed and stored in the transaction of its
-- request, which runs on the show's node), and lock timeouts reach the workers.
--
-- `booking_lock_timeout(value)`: bounds row-lock waits for the rest of the current
-- transaction. On plain PostgreSQL, `set_config('lock_timeout', value, true)` as
-- before. On Citus the waits happen on the show's worker, which `set_config` does not
-- reach (tried on Citus 13.0.3: the worker's statement saw `lock_timeout` 0); a
-- `SET LOCAL` does, when the session has `citus.propagate_set_commands = 'local'`
-- (set by the pool, `database::pool`), also from inside a PL/pgSQL function (tried:
-- the worker saw the value set).
CREATE FUNCTION booking_lock_timeout(value text) RETURNS text
    LANGUAGE sql VOLATILE AS $$SELECT set_config('lock_timeout', value, true)$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    PERFORM create_distributed_table('idempotency_keys', 'show_id', colocate_with => 'shows');
    CREATE OR REPLACE FUNCTION booking_lock_timeout(value text) RETURNS text
        LANGUAGE plpgsql VOLATILE AS $f$
        BEGIN
            EXECUTE format('SET LOCAL lock_timeout = %L', value);
            RETURN value;
        END
        $f$;
END
$$;
