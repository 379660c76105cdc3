-- Venue inventory: saved layouts, sections, seat features, blocked seats, ticket types
-- and a limit of seats per buyer.

-- A venue is a saved layout. A show created from one copies its rows into its own seats
-- when it is created, so a later edit of the venue never moves a sold seat. The rows
-- are kept as the row specs of the API (they are only ever read back whole). On Citus
-- this small table without show_id would be a reference table.
CREATE TABLE venues (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    rows         jsonb       NOT NULL CHECK (jsonb_typeof(rows) = 'array'),
    seats_total  integer     NOT NULL CHECK (seats_total > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE shows
    -- Where the layout came from; the show's seats are its own copy.
    ADD COLUMN venue_id bigint REFERENCES venues (id),
    -- Seats one user may have in active holds plus live bookings of the show.
    ADD COLUMN max_seats_per_user integer CHECK (max_seats_per_user BETWEEN 1 AND 100000),
    -- The ticket type of a seat whose hold names none.
    ADD COLUMN default_ticket_type text NOT NULL DEFAULT 'full';

-- Ticket types: the same seat sold as, say, adult or child, each at its own price per
-- category. A type is sold only for the categories it lists; a listed category without a
-- price is sold at no price (shows made with the `prices` shorthand).
CREATE TABLE ticket_types (
    show_id   bigint  NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    type      text    NOT NULL CHECK (type ~ '^[a-z0-9_]{1,32}$'),
    -- 0 is the default type.
    position  integer NOT NULL CHECK (position >= 0),
    PRIMARY KEY (show_id, type),
    UNIQUE (show_id, position)
);

CREATE TABLE ticket_prices (
    show_id   bigint NOT NULL,
    type      text   NOT NULL,
    category  text   NOT NULL,
    price     bigint CHECK (price >= 0),
    PRIMARY KEY (show_id, type, category),
    FOREIGN KEY (show_id, type) REFERENCES ticket_types (show_id, type) ON DELETE CASCADE
);

-- Every show so far sold one type, `full`, at its seats' prices.
INSERT INTO ticket_types (show_id, type, position) SELECT id, 'full', 0 FROM shows;
INSERT INTO ticket_prices (show_id, type, category, price)
SELECT DISTINCT ON (show_id, category) show_id, 'full', category, price
  FROM seats ORDER BY show_id, category, price NULLS LAST;

-- What each held seat is sold as, and at what price, fixed when the hold is made (a
-- booking's tickets are its hold's).
ALTER TABLE hold_seats
    ADD COLUMN ticket_type text NOT NULL DEFAULT 'full',
    ADD COLUMN price bigint CHECK (price >= 0);
UPDATE hold_seats hs SET price = s.price
  FROM seats s WHERE s.show_id = hs.show_id AND s.id = hs.seat_id;
ALTER TABLE hold_seats ALTER COLUMN ticket_type DROP DEFAULT;

-- Seats taken off sale by an admin (or by the venue's layout). A blocked seat points at
-- its block, as a held seat points at its hold: one pointer per seat at most.
CREATE TABLE blocks (
    show_id     bigint      NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    reason      text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (show_id, id)
);

ALTER TABLE seats
    ADD COLUMN section text CHECK (section ~ '^[A-Z0-9]{1,8}$'),
    ADD COLUMN features text[] NOT NULL DEFAULT '{}',
    ADD COLUMN block_id bigint,
    ADD FOREIGN KEY (show_id, block_id) REFERENCES blocks (show_id, id),
    DROP CONSTRAINT seats_check,
    DROP CONSTRAINT seats_check1,
    -- Row labels are unique within a section; the label (unique in the show) says both.
    DROP CONSTRAINT seats_show_id_row_label_number_key,
    ADD CONSTRAINT seats_label_check
        CHECK (label = coalesce(section || '-', '') || row_label || number::text),
    ADD CONSTRAINT seats_one_pointer CHECK (num_nonnulls(hold_id, booking_id, block_id) <= 1);

-- Prices live with ticket types now.
ALTER TABLE seats DROP COLUMN price;

CREATE INDEX seats_by_block ON seats (show_id, block_id) WHERE block_id IS NOT NULL;

-- The buyer limit counts a user's active holds of the show.
CREATE INDEX holds_by_user ON holds (show_id, user_id) WHERE status = 'active';
CREATE INDEX bookings_by_show_user ON bookings (show_id, user_id) WHERE status = 'confirmed';

ALTER TABLE seat_events DROP CONSTRAINT seat_events_cause_check,
    ADD CONSTRAINT seat_events_cause_check
        CHECK (cause IN ('hold', 'confirm', 'release', 'expire', 'cancel', 'block', 'unblock'));
