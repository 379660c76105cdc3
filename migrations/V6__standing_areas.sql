-- Standing areas: places sold by quantity (general admission) next to seats.
--
-- Each place is a row of `seats` of its own, with `area` set and the label
-- `{area}-{n}`: it has the same pointers as a seat (hold, booking; at most one), so
-- every path that holds, confirms, releases, expires or cancels seats does the same
-- for places, and an area's capacity is the number of its rows: held plus booked can
-- never pass it, whatever runs concurrently. Buyers claim free place rows with
-- `FOR UPDATE SKIP LOCKED`, so concurrent buyers of one area take different rows and
-- never queue on a common one (DESIGN.md, "Standing areas").

CREATE TABLE areas (
    show_id   bigint  NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    area      text    NOT NULL CHECK (area ~ '^[A-Z0-9_]{1,16}$'),
    -- The order the areas were given in.
    position  integer NOT NULL CHECK (position >= 0),
    capacity  integer NOT NULL CHECK (capacity BETWEEN 1 AND 100000),
    category  text    NOT NULL,
    PRIMARY KEY (show_id, area),
    UNIQUE (show_id, position)
);

ALTER TABLE seats
    ADD COLUMN area text,
    ADD FOREIGN KEY (show_id, area) REFERENCES areas (show_id, area),
    -- A place has no row; it sorts after every seat (row_index 1,000,000 + the area's
    -- position), by number.
    ALTER COLUMN row_label DROP NOT NULL,
    DROP CONSTRAINT seats_number_check,
    DROP CONSTRAINT seats_label_check,
    ADD CONSTRAINT seats_kind_check CHECK (
        CASE WHEN area IS NULL
             THEN row_label IS NOT NULL AND number BETWEEN 1 AND 200 AND row_index < 1000000
                  AND label = coalesce(section || '-', '') || row_label || number::text
             ELSE row_label IS NULL AND section IS NULL AND block_id IS NULL
                  AND number BETWEEN 1 AND 100000 AND row_index >= 1000000
                  AND label = area || '-' || number::text
        END);

-- The free places of each area, in claim order: what a buyer's SKIP LOCKED scan walks.
CREATE INDEX seats_free_places ON seats (show_id, area, id)
    WHERE area IS NOT NULL AND hold_id IS NULL AND booking_id IS NULL;

-- A venue's standing areas, as the API's area specs (copied into a show's own areas).
ALTER TABLE venues
    ADD COLUMN areas jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(areas) = 'array'),
    DROP CONSTRAINT venues_seats_total_check,
    ADD CONSTRAINT venues_seats_total_check CHECK (seats_total >= 0);
