-- The booking schema.
--
-- Every table carries show_id and every key starts with it, so that one show's rows can
-- live on one shard (Citus can distribute every table by show_id unchanged).
--
-- The state of a seat lives on its own row: `hold_id` points at the hold that holds it
-- (which may have expired: expiry is decided by the database clock when read, not by
-- the sweeper) and `booking_id` at the live booking that owns it. A seat row can point at
-- one thing only, so a seat in two live holds or bookings is impossible by construction;
-- booking_seats repeats the rule as a unique index so that no code path can record two
-- live bookings of one seat either.

CREATE TABLE shows (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title       text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    starts_at   timestamptz NOT NULL,
    currency    text        NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE seats (
    show_id     bigint  NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    id          bigint  GENERATED ALWAYS AS IDENTITY,
    label       text    NOT NULL,
    row_label   text    NOT NULL CHECK (row_label ~ '^[A-Z]{1,3}$'),
    -- 0 is the front row (nearest the screen or stage).
    row_index   integer NOT NULL CHECK (row_index >= 0),
    number      integer NOT NULL CHECK (number BETWEEN 1 AND 200),
    category    text    NOT NULL,
    price       bigint  CHECK (price >= 0),
    -- An aisle runs right after this seat: it is not adjacent to the next one.
    aisle_after boolean NOT NULL DEFAULT false,
    hold_id     uuid,
    booking_id  uuid,
    PRIMARY KEY (show_id, id),
    UNIQUE (show_id, label),
    UNIQUE (show_id, row_label, number),
    CHECK (label = row_label || number::text),
    CHECK (hold_id IS NULL OR booking_id IS NULL)
);

CREATE TABLE holds (
    show_id     bigint      NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    id          uuid        NOT NULL,
    user_id     text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),
    -- 'active' holds past expires_at read as expired; the sweeper writes 'expired' later.
    status      text        NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'confirmed', 'released', 'expired')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    total       bigint      NOT NULL CHECK (total >= 0),
    PRIMARY KEY (show_id, id),
    CHECK (expires_at > created_at)
);

-- The sweeper's queue: the earliest deadlines of holds not yet expired.
CREATE INDEX holds_active_expiry ON holds (expires_at) WHERE status = 'active';

-- The seats a hold asked for, kept after it ends (for reading it back and confirming it).
CREATE TABLE hold_seats (
    show_id  bigint NOT NULL,
    hold_id  uuid   NOT NULL,
    seat_id  bigint NOT NULL,
    PRIMARY KEY (show_id, hold_id, seat_id),
    FOREIGN KEY (show_id, hold_id) REFERENCES holds (show_id, id) ON DELETE CASCADE,
    FOREIGN KEY (show_id, seat_id) REFERENCES seats (show_id, id) ON DELETE CASCADE
);

CREATE TABLE bookings (
    show_id       bigint      NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    id            uuid        NOT NULL,
    hold_id       uuid        NOT NULL,
    user_id       text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),
    status        text        NOT NULL DEFAULT 'confirmed'
                  CHECK (status IN ('confirmed', 'cancelled')),
    confirmed_at  timestamptz NOT NULL DEFAULT now(),
    cancelled_at  timestamptz,
    total         bigint      NOT NULL CHECK (total >= 0),
    PRIMARY KEY (show_id, id),
    -- One booking per hold: a repeated confirm finds this one instead of making another.
    UNIQUE (show_id, hold_id),
    FOREIGN KEY (show_id, hold_id) REFERENCES holds (show_id, id),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL))
);

CREATE INDEX bookings_by_user ON bookings (user_id, confirmed_at DESC);

CREATE TABLE booking_seats (
    show_id     bigint  NOT NULL,
    booking_id  uuid    NOT NULL,
    seat_id     bigint  NOT NULL,
    -- false once the booking is cancelled.
    live        boolean NOT NULL DEFAULT true,
    PRIMARY KEY (show_id, booking_id, seat_id),
    FOREIGN KEY (show_id, booking_id) REFERENCES bookings (show_id, id) ON DELETE CASCADE,
    FOREIGN KEY (show_id, seat_id) REFERENCES seats (show_id, id) ON DELETE CASCADE
);

-- Invariant 1 in the database itself: at most one live booking of any seat.
CREATE UNIQUE INDEX booking_seats_one_live ON booking_seats (show_id, seat_id) WHERE live;

-- A seat points only at a hold or booking of its own show that exists.
ALTER TABLE seats
    ADD FOREIGN KEY (show_id, hold_id) REFERENCES holds (show_id, id),
    ADD FOREIGN KEY (show_id, booking_id) REFERENCES bookings (show_id, id);

CREATE INDEX seats_by_hold ON seats (show_id, hold_id) WHERE hold_id IS NOT NULL;
CREATE INDEX seats_by_booking ON seats (show_id, booking_id) WHERE booking_id IS NOT NULL;
