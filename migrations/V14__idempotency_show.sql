-- Issue 20: idempotency keys belong to a show as well as to a caller, so that every
-- table a show's transaction writes carries show_id (distributed by show, a keyed
-- request then writes to its show's node only, instead of to every node).
--
-- The show is the one the request's path names (`/shows/{id}/...`, or the show a
-- hold or booking id carries); requests that name none (creating a show or a venue)
-- use show 0. No foreign key to shows: a key is stored for requests whose show does
-- not exist (a 404 is an answer too) or does not exist yet.
--
-- Keys stored before this migration are in show 0: a retry after it of a request on
-- a show, sent with a key stored before, is not replayed (see DESIGN.md, "Schema
-- notes").
ALTER TABLE idempotency_keys
    ADD COLUMN show_id bigint NOT NULL DEFAULT 0 CHECK (show_id >= 0);

-- No default from here on: every writer names the show (a server from before this
-- migration fails its keyed requests, and rolls their work back, rather than storing
-- keys where the new code does not look).
ALTER TABLE idempotency_keys ALTER COLUMN show_id DROP DEFAULT;

-- A key is unique per caller and show. The distribution column leads, as it must in
-- every unique constraint of a distributed table; every lookup names all three.
ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_pkey,
    ADD PRIMARY KEY (show_id, scope, key);

-- idempotency_keys_by_age (V2) stays: the prune deletes by age across shows.
