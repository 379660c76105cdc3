-- Issue 17, queries with cursor pages: one index per list, in the list's keyset order,
-- so that each page is one index range scan that starts at the cursor (keyset
-- pagination, never OFFSET: a page costs its own rows, however deep it is, and rows
-- added meanwhile neither repeat nor hide one). booking-core/src/queries.rs names the
-- index each query uses; tests/it/queries.rs checks with EXPLAIN that it does.

-- A show's holds, newest first; and one user's holds of a show.
CREATE INDEX holds_page ON holds (show_id, created_at, id);
CREATE INDEX holds_page_by_user ON holds (show_id, user_id, created_at, id);

-- A show's bookings, newest first; and one user's bookings of a show. (By reference:
-- the unique index bookings_external_ref of V8.)
CREATE INDEX bookings_page ON bookings (show_id, confirmed_at, id);
CREATE INDEX bookings_page_by_user ON bookings (show_id, user_id, confirmed_at, id);

-- A user's bookings across shows, newest first. It starts with the columns of V1's
-- bookings_by_user, which it replaces (one index fewer to write with each confirm).
CREATE INDEX bookings_page_of_user ON bookings (user_id, confirmed_at, show_id, id);
DROP INDEX bookings_by_user;

-- Shows by their start, for GET /shows?from=&to=.
CREATE INDEX shows_by_start ON shows (starts_at, id);
